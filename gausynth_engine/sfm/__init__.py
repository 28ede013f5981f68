"""Structure from motion with pycolmap: reconstruction, undistortion, and the point-cloud preview.

`reconstruct` turns a folder of ordered frames into a COLMAP model; `write_colmap_layout` lays
it out the way 3DGS loaders expect; `render_orbit` draws the preview video.
"""
