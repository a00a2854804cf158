"""Thumbnails with Wand (ImageMagick): every configured size from one decode, aspect kept, never
enlarged, colours converted to sRGB.

`ThumbHandler` is the image kind's handler (thumbnailify.worker.handlers: the interface, and where
a kind of media finds its handler). Every refusal is an `ImageRejected` with the HTTP-style code
the state record keeps: 413 too many pixels, 415 not a format we read, 422 cannot decode.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import imagesize
from wand.api import libmagick, library
from wand.exceptions import MissingDelegateError, PolicyError, ResourceLimitError, WandException
from wand.image import COLORSPACE_TYPES, FILTER_TYPES, STORAGE_TYPES, BaseImage, Image
from wand.resource import limits

from thumbnailify import state
from thumbnailify.media import BY_FORMAT, GIF, HEIC, HEIF, JPEG, PNG, SNIFF_BYTES, MediaType, looks_like
from thumbnailify.memory import release_freed
from thumbnailify.record import Metadata
from thumbnailify.settings import LimitsSettings, Settings, ThumbnailSettings
from thumbnailify.startup import CannotStart
from thumbnailify.worker.fingerprints import Samples
from thumbnailify.worker.handlers import ImageRejected, SizedThumbnail, Thumbnails, heif
from thumbnailify.worker.handlers.about import clean_text, exif_time, frames_in_file, icc_description
from thumbnailify.worker.handlers.encode import ANIMATED_OUTPUTS, each_frame, encode, frame_count, keep_first_frame
from thumbnailify.worker.handlers.sample import export_samples

RENDERING = "image-5"  # changed whenever a change of this module changes what thumbnails look like
KEEP_COLORSPACES = frozenset({"srgb", "gray", "undefined"})
BOX = FILTER_TYPES.index("box")
CHAR_PIXELS = STORAGE_TYPES.index("char")
CORRUPT_IMAGE_WARNING = 325  # MagickCore's ExceptionType value
# The sRGB profile pixels are converted to, from Debian's colord-data (CC0), which
# scripts/install-system.sh and the worker image install.
SRGB_PROFILE = Path("/usr/share/color/icc/colord/sRGB.icc")
# The EXIF tags the record's metadata reads (names as ImageMagick's properties give them, numbers
# as EXIF's): when, and with what camera. Never GPS or other location tags.
CAMERA_TAGS = {"Make": 0x010F, "Model": 0x0110, "DateTimeOriginal": 0x9003, "OffsetTimeOriginal": 0x9011}
EXIF_IFD = 0x8769


class _ExceptionInfo(ctypes.Structure):
    """The leading fields of MagickCore's ExceptionInfo."""

    _fields_ = (
        ("severity", ctypes.c_int),
        ("error_number", ctypes.c_int),
        ("reason", ctypes.c_char_p),
        ("description", ctypes.c_char_p),
    )


library.GetImageFromMagickWand.argtypes = [ctypes.c_void_p]
library.GetImageFromMagickWand.restype = ctypes.c_void_p
libmagick.AcquireExceptionInfo.restype = ctypes.POINTER(_ExceptionInfo)
libmagick.GetImageException.argtypes = [ctypes.c_void_p, ctypes.POINTER(_ExceptionInfo)]
libmagick.DestroyExceptionInfo.argtypes = [ctypes.POINTER(_ExceptionInfo)]
libmagick.DestroyExceptionInfo.restype = ctypes.c_void_p
# Wand has no binding for it: assigning a profile over an embedded one converts the pixels (LCMS).
library.MagickProfileImage.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
library.MagickProfileImage.restype = ctypes.c_int



@functools.cache
def _pillow_heif() -> ModuleType:
    """pillow-heif, imported at a worker's first HEIC (its libheif and Pillow cost a JPEG worker
    memory for nothing). HEIC/HEIF are decoded by its own libheif (alpha kept, faster than
    ImageMagick 6.9's HEIC coder on Debian's libheif 1.15): one thread per process as ImageMagick,
    the primary image only."""
    import pillow_heif  # noqa: PLC0415 - see above

    pillow_heif.options.DECODE_THREADS = 1
    pillow_heif.options.THUMBNAILS = False
    pillow_heif.options.DEPTH_IMAGES = False
    pillow_heif.options.AUX_IMAGES = False
    return pillow_heif


def fit(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest size inside the box with the same aspect, never larger than the source."""
    scale = min(box_width / width, box_height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def apply_limits(conf: LimitsSettings) -> None:
    """Per-process ImageMagick caps, below the policy file's (a program may only lower them)."""
    limits["memory"] = conf.magick_memory
    limits["map"] = conf.magick_map
    limits["disk"] = conf.magick_disk
    limits["width"] = conf.magick_width
    limits["height"] = conf.magick_height
    limits["area"] = conf.max_pixels


def header_size(source: Path, media_type: MediaType) -> tuple[int, int] | None:
    """Width and height as the file's header declares them, upright, without decoding pixels.

    imagesize turns a JPEG's size by its EXIF orientation; it reads a GIF's size as signed
    16-bit numbers (65535 becomes -1), so a GIF's logical screen is read here, as is the
    primary image of a HEIF/AVIF file (which imagesize does not know).
    """
    try:
        with source.open("rb") as file:
            head = file.read(SNIFF_BYTES)
            if not looks_like(head, media_type):
                return None  # not what it claims: the decoder will refuse it
            if media_type is GIF:
                return struct.unpack("<HH", head[6:10])
            if media_type.magic in ("heif", "avif"):
                primary = heif.read_primary(file)
                return primary.size if primary else None
        width, height = imagesize.get(source)
    except (OSError, ValueError, struct.error):
        return None
    return (width, height) if width > 0 and height > 0 else None


def corrupt_image_warning(img: Image) -> str | None:
    """The CorruptImageWarning a successful read left on the image (a JPEG cut mid-scan decodes
    "fine" with grey rows). ImageMagick 6 files it on the image, where Wand never looks."""
    info = libmagick.AcquireExceptionInfo()
    try:
        libmagick.GetImageException(library.GetImageFromMagickWand(img.wand), info)
        found = info.contents
        if found.severity != CORRUPT_IMAGE_WARNING:
            return None
        return " ".join(part.decode(errors="replace") for part in (found.reason, found.description) if part)
    finally:
        libmagick.DestroyExceptionInfo(info)


def _colorspace(img: Image) -> str:
    # Wand's img.colorspace raises IndexError on enum values it does not list (linear gray PNGs).
    value = library.MagickGetImageColorspace(img.wand)
    return COLORSPACE_TYPES[value] if 0 <= value < len(COLORSPACE_TYPES) else "other"


def _canvas(img: BaseImage) -> tuple[int, int]:
    """The picture's whole size: an animation's logical screen, else the decoded image's."""
    return img.page_width or img.width, img.page_height or img.height


def _shrink(img: BaseImage, width: int, height: int) -> None:
    """Resize to exactly width x height (already aspect-correct), as fast as looks right.

    Over 5x, ImageMagick's thumbnail() samples down first, far faster than filtering every source
    pixel; at 5x or less (a JPEG after shrink-on-load) a box filter averages the source pixels
    each thumbnail pixel covers, as Pillow's reduce() does before its last resize: 70% of the
    time of a triangle filter (the resize of a 1/8 decode was ~15% of a job), a third of that of
    thumbnail()'s Lanczos, and at 2x-5x as clean a picture (the antialiasing is the average).
    Under 2x (a large size from a JPEG's 1/8 decode) scale()'s area average is as good and
    cheaper still. Wand resizes every frame of an animation in one call (coalescing it first:
    each frame becomes a whole picture).
    """
    if library.MagickGetNumberImages(img.wand) > 1:
        img.resize(width, height, filter="triangle")
    elif img.width < 2 * width and img.height < 2 * height:
        if not library.MagickScaleImage(img.wand, width, height):
            img.raise_exception()
    elif img.width <= 5 * width and img.height <= 5 * height:
        # Straight to ImageMagick: Wand's resize() first asks for the MIME type, ~1 ms a call.
        if not library.MagickResizeImage(img.wand, width, height, BOX, 1.0):
            img.raise_exception()
    else:
        img.thumbnail(width, height)
    for _ in each_frame(img):
        library.MagickSetImagePage(img.wand, width, height, 0, 0)  # else it keeps its old canvas


def _to_srgb(img: Image, srgb_profile: bytes) -> bool:
    """Pixels converted to sRGB: from an embedded ICC profile through LittleCMS, else by colour
    space (CMYK, YCbCr from the HEIF reader, ...). Gray stays gray. Run on the small image.
    True when some frame's pixels changed."""
    converted = False
    for _ in each_frame(img):
        space = _colorspace(img)
        if space != "gray" and img.profiles["icc"] is not None:
            if library.MagickProfileImage(img.wand, b"icc", srgb_profile, len(srgb_profile)):
                converted = True
                continue
            # A profile LittleCMS cannot use, or one for another colour space: as if untagged.
            library.MagickClearException(img.wand)
            del img.profiles["icc"]
        if space not in KEEP_COLORSPACES:
            img.transform_colorspace("srgb")
            converted = True
    return converted


def _restore_heif_profile(img: Image, source: Path) -> None:
    """Attach an AVIF's ICC profile again (without converting), for _to_srgb to apply.

    ImageMagick 6.9.11's AVIF reader (its HEIC coder module) reads the profile, then converts YCbCr
    to RGB with TransformImageColorspace, which deletes every ICC profile of the image: a Display P3
    photo would be taken as sRGB.
    """
    if img.profiles["icc"] is not None:
        return
    with source.open("rb") as file:
        primary = heif.read_primary(file)
    if primary is not None and primary.icc:
        img.profiles["icc"] = primary.icc


@dataclass(frozen=True)
class _Decoded:
    mode: str  # "RGB" or "RGBA", 8 bits per channel
    size: tuple[int, int]  # of the pixels, after any reduction
    pixels: bytes
    icc: bytes | None
    full_size: tuple[int, int]  # as libheif decoded it: upright, cropped
    camera: dict[str, str]  # the EXIF tags metadata reads (CAMERA_TAGS), as ImageMagick names them


def _decode_heif(source: Path, floor: tuple[int, int]) -> _Decoded:
    """The primary image of a HEIC/HEIF, decoded by libheif (irot, imir and clap applied) and, as
    libjpeg's shrink-on-load, reduced by the largest whole factor that keeps it at least `floor`
    (a box average, alpha premultiplied): ImageMagick then holds a 1000x750 copy of a 12 MP
    photo, not 96 MB. libheif's buffer is freed on return."""
    from PIL import Image as PILImage  # noqa: PLC0415 - with pillow-heif, only once a HEIC comes

    try:
        decoded = _pillow_heif().open_heif(source, convert_hdr_to_8bit=True)
        width, height = decoded.size
        picture = PILImage.frombuffer(decoded.mode, decoded.size, decoded.data, "raw", decoded.mode, decoded.stride, 1)
        factor = min(width // max(1, floor[0]), height // max(1, floor[1]))
        if factor > 1:
            picture = picture.reduce(factor)
        if picture.mode not in ("RGB", "RGBA"):  # premultiplied alpha (RGBa), gray (L, LA)
            picture = picture.convert("RGBA" if decoded.has_alpha else "RGB")
        pixels = picture.tobytes()
    except (ValueError, RuntimeError, EOFError) as exc:
        raise ImageRejected(state.UNDECODABLE, f"cannot decode HEIF: {exc}") from exc
    return _Decoded(picture.mode, picture.size, pixels, decoded.info.get("icc_profile") or None, (width, height),
                    _exif_tags(decoded.info.get("exif")))


def _exif_tags(blob: bytes | None) -> dict[str, str]:
    """CAMERA_TAGS from a HEIF's EXIF block (read by Pillow, loaded for HEIFs anyway)."""
    if not blob:
        return {}
    from PIL import Image as PILImage  # noqa: PLC0415 - see _decode_heif

    exif = PILImage.Exif()
    try:
        exif.load(blob)
        tags = {**exif, **exif.get_ifd(EXIF_IFD)}
    except (ValueError, SyntaxError, struct.error, OSError):  # a damaged block: no camera facts
        return {}
    return {name: str(tags[tag]) for name, tag in CAMERA_TAGS.items() if tag in tags}


def _read_heif(img: Image, source: Path, floor: tuple[int, int]) -> tuple[tuple[int, int], dict[str, str]]:
    """The primary image of a HEIC/HEIF into img, alpha kept, with its ICC profile attached for
    _to_srgb to apply; its whole size, which thumbnails are fitted to, and its camera's tags."""
    decoded = _decode_heif(source, floor)
    width, height = decoded.size
    if not library.MagickConstituteImage(img.wand, width, height, decoded.mode.encode(), CHAR_PIXELS, decoded.pixels):
        img.raise_exception()
    if decoded.icc:
        img.profiles["icc"] = decoded.icc
    return decoded.full_size, decoded.camera


def _optimize_gif(img: Image, *, relayer: bool) -> None:
    """Smaller animated GIF, same look: each frame only where it differs from the one before
    (unchanged pixels transparent), then a palette per frame without dithering (ImageMagick's
    default Riemersma dither takes ~0.1 s per 100x75 frame and makes the frames differ more).
    Frames that were not resized keep their layout: they are the source encoder's already."""
    if relayer and library.MagickGetNumberImages(img.wand) > 1:
        img.optimize_layers()
        img.optimize_transparency()
    for _ in each_frame(img):
        library.MagickQuantizeImage(img.wand, 256, 0, 0, False, False)


def _animation_frames(source: Path, media_type: MediaType, decoded: int) -> int | None:
    """An animation's frames, all of them (the worker decodes at most thumbnail.max_frames); None
    for a still picture."""
    frames = (frames_in_file(source, media_type) or decoded) if media_type.animated else decoded
    return frames if frames > 1 else None


class ThumbHandler:
    def __init__(self, thumbnail: ThumbnailSettings, limits_conf: LimitsSettings) -> None:
        self.boxes = thumbnail.boxes()
        self.max_frames = thumbnail.max_frames
        self.quality = thumbnail.quality
        self.max_pixels = limits_conf.max_pixels
        self.max_animation_pixels = limits_conf.max_animation_pixels
        try:
            self.srgb_profile = SRGB_PROFILE.read_bytes()
        except OSError as exc:
            raise CannotStart(f"no sRGB profile at {SRGB_PROFILE}: install Debian's colord-data") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> ThumbHandler:
        return cls(settings.thumbnail, settings.limits)

    @property
    def settings_key(self) -> str:
        """What decides the thumbnails besides the upload's bytes: an upload identical to an earlier
        one whose thumbnails were made under the same key may reuse them."""
        settings = [RENDERING, self.boxes, self.max_frames, self.quality.model_dump(), self.max_animation_pixels]
        return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]

    def make(self, source: Path, media_type: MediaType) -> Thumbnails:
        kind = media_type.name.partition("/")[0]
        method: Callable[[Path, MediaType], Thumbnails] | None = getattr(self, f"_make_{kind}", None)
        if method is None:
            raise ImageRejected(state.UNSUPPORTED, f"no thumbnails for {media_type.name} yet")
        try:
            return method(source, media_type)
        except ResourceLimitError as exc:
            raise ImageRejected(state.TOO_MANY_PIXELS, f"image exceeds a size limit: {exc}") from exc
        except MemoryError as exc:  # an allocation past worker.memory_limit
            raise ImageRejected(state.TOO_MANY_PIXELS, "decoding it needs more memory than the worker has") from exc
        except (PolicyError, MissingDelegateError) as exc:
            raise ImageRejected(state.UNSUPPORTED, f"format not supported: {exc}") from exc
        except WandException as exc:
            raise ImageRejected(state.UNDECODABLE, f"cannot decode {media_type.name}: {exc}") from exc
        finally:
            release_freed()  # a decoder's large buffers must not stay in RSS for the next image

    def _make_image(self, source: Path, media_type: MediaType) -> Thumbnails:
        declared = header_size(source, media_type)
        if declared is not None and declared[0] * declared[1] > self.max_pixels:
            raise ImageRejected(
                state.TOO_MANY_PIXELS,
                f"{declared[0]}x{declared[1]} image ({declared[0] * declared[1]} pixels) is over the "
                f"{self.max_pixels} pixel limit",
            )
        if media_type.magic in ("heif", "avif"):
            self._check_heif(source)
        spec = f"{media_type.coder}:{source}"
        still = media_type.animated and not self._keeps_frames(media_type)
        if media_type.animated:
            spec += "[0]" if still else f"[0-{self._frames_kept(declared) - 1}]"
        with Image() as img:
            if media_type is JPEG:
                img.options["jpeg:size"] = "{}x{}".format(*self._decode_floor(declared))
            decoded_size = None
            if media_type in (HEIC, HEIF):
                decoded_size, camera = _read_heif(img, source, self._decode_floor(declared))
            else:
                img.read(filename=spec)
                camera = {name: value for name in CAMERA_TAGS if (value := img.metadata.get(f"exif:{name}"))}
            if media_type.animated and frame_count(img) == 1:
                # The whole picture, even where its one frame covers part of the canvas (a resize
                # would stretch that part over it; several frames are coalesced as they resize).
                keep_first_frame(img)
            warning = corrupt_image_warning(img)
            if warning:
                raise ImageRejected(state.UNDECODABLE, f"cannot decode {media_type.name}: {warning}")
            img.auto_orient()  # EXIF; a HEIF's irot/imir are applied by libheif as it decodes
            if media_type.magic == "avif":
                _restore_heif_profile(img, source)
            own_type = self._output_type(img, media_type)
            # A JPEG read at reduced scale and an animation's canvas (logical screen) are only
            # in the header; a HEIF's is the one libheif decoded (irot, clap applied).
            if media_type is JPEG or media_type.animated:
                upright = declared or (img.page_width or img.width, img.page_height or img.height)
            else:
                upright = decoded_size or (img.width, img.height)
            about = Metadata(
                width=upright[0], height=upright[1], format=media_type.coder,
                frames=_animation_frames(source, media_type, len(img.sequence)),
                has_alpha=bool(img.alpha_channel), color_profile=icc_description(img.profiles["icc"]),
                captured_at=exif_time(camera.get("DateTimeOriginal"), camera.get("OffsetTimeOriginal")),
                camera_make=clean_text(camera.get("Make")), camera_model=clean_text(camera.get("Model")),
            )
            sizes, samples = self._render_all(img, media_type, own_type, upright)
            return Thumbnails(own_type, sizes, len(img.sequence), samples, about)

    def _check_heif(self, source: Path) -> None:
        """Refuse before any decode what the boxes do not vouch for: a primary image without a
        readable size, a derived image (grid, overlay) that does not add up or is not the size its
        ispe says, or one whose tiles or inputs take more than `limits.max_pixels` (its own size
        was checked as any image's)."""
        with source.open("rb") as file:
            primary = heif.read_primary(file)
        if primary is None or primary.size is None or primary.pixels is None:
            raise ImageRejected(state.UNDECODABLE, "cannot read the HEIF container's primary image")
        if primary.pixels > self.max_pixels:
            raise ImageRejected(
                state.TOO_MANY_PIXELS,
                f"HEIF image made of {primary.pixels} pixels (grid tiles or overlay inputs) is over the "
                f"{self.max_pixels} pixel limit",
            )
        if not primary.consistent:
            raise ImageRejected(state.UNDECODABLE, "HEIF image grid or overlay not the size its ispe declares")

    def _keeps_frames(self, media_type: MediaType) -> bool:
        """Whether some size holds an animation: if none does (every size JPEG or PNG), only the
        first frame is decoded."""
        return any((BY_FORMAT[box.format] if box.format else media_type) in ANIMATED_OUTPUTS for box in self.boxes)

    def _frames_kept(self, declared: tuple[int, int] | None) -> int:
        """Frames of an animation to decode: config's cap, fewer when its canvas is large, so the
        decoded and coalesced frames stay within `limits.max_animation_pixels`."""
        if declared is None:
            return self.max_frames
        return max(1, min(self.max_frames, self.max_animation_pixels // max(1, declared[0] * declared[1])))

    @staticmethod
    def _output_type(img: Image, media_type: MediaType) -> MediaType:
        """The type of a size that names no format: the source's own, JPEG for HEIC/HEIF (PNG with
        transparency)."""
        if media_type.keeps_format:
            return media_type
        return PNG if img.alpha_channel else JPEG

    def _decode_floor(self, declared: tuple[int, int] | None) -> tuple[int, int]:
        """Shrink-on-load: libjpeg decodes at 1/8..8/8 scale (a HEIF is reduced by a whole factor
        once decoded), never below this size. At least twice the smallest size (what one size needs
        for a clean last reduction) and the largest size, so every size comes from this one decode."""
        if declared is None:
            sides = [max(box.width, box.height) for box in self.boxes]
            side = max(2 * min(sides), *sides)
            return side, side
        fitted = [fit(*declared, box.width, box.height) for box in self.boxes]
        smallest, largest = min(fitted), max(fitted)
        return max(2 * smallest[0], largest[0]), max(2 * smallest[1], largest[1])

    def _render_all(
        self, img: Image, source_type: MediaType, own_type: MediaType, upright: tuple[int, int]
    ) -> tuple[tuple[SizedThumbnail, ...], Samples]:
        """Every size, largest first, each from the smallest image already made that is at least
        twice its size (else from the decoded one): a second size costs a small resize, not a
        second pass over the whole picture. ImageMagick shares a copy's pixels until it is written.
        A size the decoded picture already has (never enlarged) is encoded from it as it is.
        The fingerprints' samples come from the last, smallest, picture."""
        made: dict[str, SizedThumbnail] = {}
        sources: list[Image] = []
        smallest = img
        try:
            for box in sorted(self.boxes, key=lambda box: box.width * box.height, reverse=True):
                width, height = fit(*upright, box.width, box.height)
                output = BY_FORMAT[box.format] if box.format else own_type
                if (width, height) == upright == _canvas(img):
                    made[box.name] = self._encode(img, source_type, output, box.name, (width, height), resized=False)
                    smallest = img
                    continue
                base = next((s for s in reversed(sources) if s.width >= 2 * width and s.height >= 2 * height), img)
                resized = base.clone()
                sources.append(resized)
                _shrink(resized, width, height)
                made[box.name] = self._encode(resized, source_type, output, box.name, (width, height), resized=True)
                smallest = resized
            samples = self.samples(smallest)
        finally:
            for source in sources:
                source.close()
        return tuple(made[box.name] for box in self.boxes), samples

    def samples(self, picture: Image) -> Samples:
        """The fingerprints' pixels: the picture's first frame in sRGB (as its thumbnail is)."""
        with Image(image=picture.sequence[0]) as first:
            _to_srgb(first, self.srgb_profile)
            return export_samples(first)

    def _encode(
        self, picture: Image, source_type: MediaType, output: MediaType, name: str, size: tuple[int, int], *,
        resized: bool,
    ) -> SizedThumbnail:
        """One size in sRGB, without metadata, in the size's format. A GIF that was not resized
        keeps an animation's frames as the source laid them out, and their palettes; a format that
        holds one frame gets the first."""
        with picture.clone() as small:
            if frame_count(small) > 1 and output not in ANIMATED_OUTPUTS:
                keep_first_frame(small)
            converted = _to_srgb(small, self.srgb_profile)
            if output is GIF and (resized or converted or source_type is not GIF):
                _optimize_gif(small, relayer=resized or source_type is not GIF)
            small.strip()
            small.depth = 8
            return SizedThumbnail(name, encode(small, output, self.quality), *size, output)
