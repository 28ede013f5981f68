"""Gives a known focal length for SfM: from the preset (a calibration) or from the photos' EXIF."""

from __future__ import annotations

from pathlib import Path

# EXIF tags (Exif IFD): FocalLength, FocalLengthIn35mmFilm, FocalPlaneXResolution,
# FocalPlaneResolutionUnit, PixelXDimension.
_FOCAL, _FOCAL_35, _PLANE_X, _PLANE_UNIT, _PIXEL_X = 37386, 41989, 41486, 41488, 40962
_MM_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}


def exif_focal_px(photo: Path, sensor_width_mm: float = 0.0) -> tuple[float, str] | None:
    """Gives (focal length in pixels of `photo` as stored, where it came from), or None when the
    EXIF does not say enough: a 35 mm equivalent, or a focal length in mm with the focal-plane
    resolution or a sensor width (mm) the user gives."""
    from PIL import Image

    try:
        with Image.open(photo) as im:
            width, height = im.size
            exif = im.getexif().get_ifd(0x8769)
    except (OSError, ValueError):
        return None
    long_side = max(width, height)
    f35 = float(exif.get(_FOCAL_35) or 0)
    if f35 > 0:
        # The 35 mm equivalent relates the focal length to a 36 mm wide frame.
        return f35 / 36.0 * long_side, f"EXIF 35 mm equivalent {f35:g} mm"
    f_mm = float(exif.get(_FOCAL) or 0)
    if f_mm <= 0:
        return None
    # The EXIF pixel size is the camera's own; the file may have been resized since.
    recorded = float(exif.get(_PIXEL_X) or width)
    plane_x, unit = float(exif.get(_PLANE_X) or 0), int(exif.get(_PLANE_UNIT) or 2)
    if plane_x > 0 and unit in _MM_PER_UNIT:
        px_per_mm = plane_x / _MM_PER_UNIT[unit]
        return f_mm * px_per_mm * width / recorded, f"EXIF {f_mm:g} mm at the focal-plane resolution"
    if sensor_width_mm > 0:
        return f_mm / sensor_width_mm * width, f"EXIF {f_mm:g} mm on a {sensor_width_mm:g} mm sensor"
    return None


def scale_to_frames(input_size: tuple[int, int], frame_size: tuple[int, int], square: str = "crop"
                    ) -> float:
    """Gives the pixel scale from the input (video or photos as given) to the SfM frames, whether
    preprocess kept the aspect ratio or made a square (`square`: "crop" keeps the short side,
    "pad" the long one)."""
    (iw, ih), (fw, fh) = input_size, frame_size
    if abs(iw * fh - ih * fw) <= 0.01 * iw * fh:  # same aspect ratio: a plain resize
        return fw / iw
    return fw / (min(iw, ih) if square == "crop" else max(iw, ih))
