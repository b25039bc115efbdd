"""``AnimationPipeline``: a trained model, one person, any number of driving frames.

    pipeline = AnimationPipeline.from_pretrained("models/demo")
    pipeline.set_source(["me.jpg"])                 # once per person (or load_source)
    for frame in pipeline.animate(driving_frames):  # any iterable of RGB uint8 frames
        use(frame.image)

Inference only: no optimiser, no discriminator, no training data. Per driving frame:
landmarks of the tracked face -> optional temporal smoothing -> motion transfer onto
the source (relative or absolute) -> landmark image -> the method's synthesis with the
cached person state, in batches -> optional paste-back into the source photo.
Frames stream through; memory does not grow with the length of the video.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from talkinghead.config.prepare import PrepareConfig
from talkinghead.data.crop import crop_image
from talkinghead.data.rasterize import get_rasterizer, image_to_tensor
from talkinghead.data.image_sequence import read_image
from talkinghead.inference.driving import DrivingError, DrivingFrame, DrivingTracker
from talkinghead.inference.pose_filter import PoseFilter
from talkinghead.inference.motion import MotionTransfer, TemporalSmoother
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.paste_back import PasteBack
from talkinghead.inference.stages import prefetch
from talkinghead.inference.temporal import TemporalWindow
from talkinghead.inference.source import (
    SourceEncoding,
    SourceError,
    SourceFace,
    crop_box_for,
    ibug68_points,
    model_fingerprint,
    prepare_source_face,
    rasterizer_points,
)
from talkinghead.models.inference_model import InferenceModel
from talkinghead.models.pretrained import PretrainedModel, load_pretrained
from talkinghead.utils.device import resolve_device
from talkinghead.errors import InvalidInputError

log = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class AnimatedFrame:
    """One synthesised frame.

    Attributes:
        index: position in the driving stream.
        image: (S, S, 3) uint8 RGB synthesised crop, at the pipeline's :attr:`~AnimationPipeline.frame_size`.
        driving: (H, W, 3) uint8 RGB driving frame it was made from.
        driving_box: (4,) the driving video's face crop (for side-by-side views).
        landmarks: the target landmarks drawn for the model, in crop pixels.
        face_found: whether the driving face was detected in this frame (else held).
        pasted: (H, W, 3) uint8 source photo with the face blended in, with ``paste_back``.
    """

    index: int
    image: np.ndarray
    driving: np.ndarray
    driving_box: np.ndarray
    landmarks: np.ndarray
    face_found: bool
    pasted: np.ndarray | None = None


@dataclass
class AnimationStats:
    """Counts and per-stage wall time of the last :meth:`AnimationPipeline.animate` pass."""

    frames: int = 0
    frames_without_face: int = 0
    frames_with_several_faces: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"landmarks": 0.0, "synthesis": 0.0, "paste_back": 0.0})


class AnimationPipeline:
    """Animate one person with a trained model of any method.

    Args:
        model: the method's inference model (eval mode).
        prepare: detector and crop settings of the model's training data.
        device: where the networks run.
        subject_state: the person state of a fine-tuned release, used instead of encoding
            the source photos (the networks were tuned with exactly this state).
        name: where the weights came from (for messages).
        description: which model this is, for summary lines (``demo (MetaPortrait, 128 px)``);
            ``name`` when not given.
    """

    def __init__(
        self,
        model: InferenceModel,
        *,
        prepare: PrepareConfig | None = None,
        device: str | torch.device = "cpu",
        subject_state: dict[str, torch.Tensor] | None = None,
        name: str = "model",
        description: str | None = None,
    ):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.prepare = prepare or PrepareConfig()
        self.size = model.image_size
        self.rasterizer = get_rasterizer(model.landmark_style)
        self.subject_state = subject_state
        self.name = name
        self.description = description or name
        self.fingerprint = model_fingerprint({n: getattr(model, n) for n in model.network_names})
        self.source: SourceEncoding | None = None
        self.stats = AnimationStats()
        self._landmarker = None
        self.runtime = None  # a SynthesisRuntime (set_runtime); None: eager
        self._runtime_args: dict | None = None  # what set_runtime was asked for (rebuilt when the output size changes it)
        self._rewritten = False  # fuse_for_inference applied (set_runtime)
        self.output_warp = model.output_warp()  # None: the method renders at its own size only
        self.output_size = self.size
        self._faces: list[SourceFace] = []  # the encoded photos (their crops at the output size)
        self._full_state: dict[str, torch.Tensor] | None = None  # output_warp.source_state, one person
        self.mouth = model.mouth_interior()  # None: the model has no mouth generator
        self._mouth_reference: dict[str, torch.Tensor] | None = None  # the person's mouth, for self.mouth

    @classmethod
    def from_weights(cls, pretrained: PretrainedModel, *, device: str | torch.device = "auto") -> "AnimationPipeline":
        """A pipeline from weights already read by :func:`load_pretrained` (no second read)."""
        return cls(
            pretrained.inference_model(), prepare=pretrained.prepare_config(), device=device,
            subject_state=pretrained.person_state(), name=str(pretrained.source), description=pretrained.describe(),
        )

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str | torch.device = "auto", use_ema: bool = True
    ) -> "AnimationPipeline":
        """Load a release folder (e.g. ``models/demo``), a checkpoint file or a run folder.

        Raises:
            InputNotFoundError, PretrainedError, ReleaseError, CheckpointError: the weights
                are missing, corrupt or of another architecture (the message names the file).
        """
        return cls.from_weights(load_pretrained(path, use_ema=use_ema), device=device)

    def set_runtime(self, kind: str = "eager", *, batch_size: int = 8, cache_dir: str | Path | None = None,
                    compile_mode: str | None = None, rewrite: bool = True):
        """Run the per-frame synthesis in ``eager``, ``compile``, ``onnx`` or ``auto`` (see :mod:`.runtime`).

        With ``rewrite``, the exact rewrites of :mod:`.rewrites` are applied to the model
        first (once). The runtime is checked against the original eager model when built
        (its ``max_abs_diff``) and cached on disk by weights fingerprint and batch size.
        Returns the :class:`~talkinghead.inference.runtime.SynthesisRuntime`.
        """
        import copy

        from talkinghead.inference.rewrites import fuse_for_inference
        from talkinghead.inference.runtime import build_runtime

        self._runtime_args = {"kind": kind, "batch_size": batch_size, "cache_dir": cache_dir,
                              "compile_mode": compile_mode, "rewrite": rewrite}
        reference = None
        if rewrite and not self._rewritten:
            reference = copy.deepcopy(self.model)  # the original, to check the rewritten runtime against
            fuse_for_inference(self.model)
            self._rewritten = True
        target = self.model
        if self._warps_at_output:  # the networks' parts at s; the warp at S runs after, in PyTorch
            target = self.output_warp.parts_model
            reference = reference.output_warp().parts_model if reference is not None else None
        self.runtime = build_runtime(target, kind, batch_size=batch_size, fingerprint=self.fingerprint,
                                     cache_dir=cache_dir, compile_mode=compile_mode, reference=reference)
        return self.runtime

    # ------------------------------------------------------------------ output size

    @property
    def _warps_at_output(self) -> bool:
        return self.output_warp is not None and self.output_size > self.size

    @property
    def frame_size(self) -> int:
        """Side of the frames :meth:`synthesize` and :meth:`animate` return.

        The output size when the method warps at it (:meth:`InferenceModel.output_warp`),
        else the model's size (callers resize those frames).
        """
        return self.output_size if self._warps_at_output else self.size

    def set_output_size(self, size: int | None) -> int:
        """Render frames at ``size`` px (None: the model's size); returns :attr:`frame_size`.

        A method with an :class:`~talkinghead.models.inference_model.OutputWarp` (MetaPortrait)
        keeps its networks at the model's size and warps the source photo at ``size``, so
        the photo's own detail survives; other methods keep their size.

        Raises:
            InvalidInputError: a size smaller than 16 px.
        """
        size = self.size if size is None else int(size)
        if size < 16:
            raise InvalidInputError(f"output size must be at least 16 px, got {size}")
        was = self._warps_at_output
        self.output_size = size
        self._full_state = self._source_full_state() if self.source is not None else None
        self._mouth_reference = None  # cut again at the new size when first needed
        if self._runtime_args is not None and was != self._warps_at_output:
            self.set_runtime(**self._runtime_args)
        return self.frame_size

    def _source_full_state(self) -> dict[str, torch.Tensor] | None:
        """The output warp's source state at the output size (None when frames stay at the model's size)."""
        if not self._warps_at_output:
            return None
        size = self.output_size
        if self._faces and self.subject_state is None:
            crops = image_to_tensor(np.stack([crop_image(f.photo, f.box, size) for f in self._faces]))
            drawings = image_to_tensor(np.stack([self.rasterizer(rasterizer_points(f.dense, self.rasterizer), self.size)
                                                 for f in self._faces]))
            state = self.output_warp.source_state(crops[None], drawings[None])
            return {name: value[0].float() for name, value in state.items()}
        # A loaded source or a fine-tuned subject state: the photos behind its slots are not known
        # here, so the state's own frames are enlarged (the warp still runs at the output size).
        log.info("%s: the source frames at %d px are not available; warping the model's %d px frames enlarged",
                 self.name, size, self.size)
        return self.output_warp.enlarged_source_state(self.source.state, size)

    def _source_mouth(self) -> dict[str, torch.Tensor] | None:
        """The person's mouth for :attr:`mouth`, cut from the photos at the frame size (zeros for a loaded source)."""
        if self.mouth is None:
            return None
        if not self._faces:
            return self.mouth.reference(None, None)
        size = self.frame_size
        frames = image_to_tensor(np.stack([crop_image(f.photo, f.box, size) for f in self._faces]))
        points = torch.from_numpy(np.stack([self.to_frame_pixels(f.dense) for f in self._faces]))
        return self.mouth.reference(frames, points)

    def to_frame_pixels(self, points: np.ndarray) -> np.ndarray:
        """(n, >= 2) points in the model's crop pixels -> (n, 2) float32 in pixels of the :attr:`frame_size` frames."""
        scale = self.frame_size / self.size
        return ((np.asarray(points, np.float32)[:, :2] + 0.5) * scale - 0.5).astype(np.float32)

    # ------------------------------------------------------------------ landmarks

    @property
    def landmarker(self):
        """The model's landmark backend, created on first use."""
        if self._landmarker is None:
            from talkinghead.data.landmarks.factory import create_landmarker

            self._landmarker = create_landmarker(self.prepare.landmarks, self.prepare.min_detection_confidence)
        return self._landmarker

    def close(self) -> None:
        """Release the landmark detector."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> "AnimationPipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ source

    def _source_faces(self, images: Sequence[str | Path | np.ndarray], face_index: int) -> list[SourceFace]:
        if not images:
            raise SourceError("no source image was given")
        faces = []
        for number, item in enumerate(images):
            if isinstance(item, np.ndarray):
                photo, name = item, f"source image {number}"
                if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
                    raise SourceError(f"{name}: expected an (H, W, 3) uint8 RGB array, got {photo.dtype} {photo.shape}")
            else:
                photo, name = read_image(item), str(item)
            faces.append(prepare_source_face(photo, name, self.landmarker, self.prepare, self.size,
                                             face_index=face_index))
        return faces

    @torch.no_grad()
    def set_source(self, images: Sequence[str | Path | np.ndarray], *, face_index: int = 0) -> SourceEncoding:
        """Encode a person from one or more photos (files or RGB uint8 arrays).

        The method's encoder sees every photo (LSR averages its latents over them, LSR Eq. 1
        and 3); the first photo is the reference for relative motion and paste-back.

        Raises:
            SourceError: a photo without a usable face (named).
            VideoReadError: a file that cannot be read (named).
        """
        faces = self._source_faces(images, face_index)
        self._faces = faces
        if self.subject_state is not None:
            log.info("%s: using the fine-tuned subject state stored with the model", self.name)
            state = self.subject_state
        else:
            crops = image_to_tensor(np.stack([f.crop for f in faces]))
            drawings = np.stack([self.rasterizer(rasterizer_points(f.dense, self.rasterizer), self.size)
                                 for f in faces])
            landmarks = image_to_tensor(drawings)
            encoded = self.model.encode(crops[None].to(self.device), landmarks[None].to(self.device))
            state = {name: value[0].cpu() for name, value in encoded.items()}
        self.source = SourceEncoding(
            state={name: value.float() for name, value in state.items()},
            method=self.model.method,
            reference=faces[0],
            source_names=[f.name for f in faces],
            model_fingerprint=self.fingerprint,
        )
        self._full_state = self._source_full_state()
        self._mouth_reference = None
        return self.source

    def save_source(self, path: str | Path) -> Path:
        """Write the current source encoding (see :meth:`SourceEncoding.save`)."""
        if self.source is None:
            raise SourceError("no source to save; call set_source first")
        return self.source.save(path)

    def load_source(self, path: str | Path) -> SourceEncoding:
        """Use a source encoded earlier by this same model.

        Raises:
            SourceError: the file is unreadable or was encoded by another model.
        """
        source = SourceEncoding.load(path)
        if source.method != self.model.method:
            raise SourceError(
                f"{path}: was encoded by a {source.method!r} model and this is a {self.model.method!r} model; "
                "encode the source again with this model (--source ... --save-source)"
            )
        if source.model_fingerprint != self.fingerprint:
            raise SourceError(
                f"{path}: was encoded by another model (fingerprint {source.model_fingerprint}, this model "
                f"{self.fingerprint}); encode the source again with this model (--source ... --save-source)"
            )
        self.source = source
        self._faces = []
        self._full_state = self._source_full_state()
        self._mouth_reference = None
        return source

    # ------------------------------------------------------------------ driving

    def _autocast(self, precision: str):
        if precision == "fp32":
            return nullcontext()
        if self.device.type != "cuda":
            raise InvalidInputError(f"precision {precision} needs a CUDA device; use fp32 on the CPU")
        return torch.autocast("cuda", dtype=AUTOCAST_DTYPES[precision])

    @torch.no_grad()
    def synthesize(self, landmark_images: torch.Tensor, precision: str = "fp32",
                   points: np.ndarray | None = None) -> torch.Tensor:
        """(b, c, s, s) landmark images in [-1, 1] -> (b, 3, S, S) frames of the source person (S: :attr:`frame_size`).

        ``points``: the (b, n, >= 2) target face points in the model's crop pixels; with them,
        a model's mouth generator (:attr:`mouth`) paints the opening of the mouth.
        """
        if self.source is None:
            raise SourceError("no source person; call set_source (or load_source) before animating")
        landmark_images = landmark_images.to(self.device)
        state = self.model.expand_state(self.source.state, landmark_images.shape[0])
        target = self.output_warp.parts_model if self._warps_at_output else self.model
        if self.runtime is not None and precision == "fp32":
            out = self.runtime(landmark_images, state).float()
        else:
            with self._autocast(precision):
                out = target(landmark_images, state).float()
        if self._warps_at_output:
            if self._full_state is None:
                self._full_state = self._source_full_state()
            full = self.model.expand_state(self._full_state, landmark_images.shape[0])
            out = self.output_warp.compose(out, landmark_images, state, full).float()
        if self.mouth is not None and points is not None:
            if self._mouth_reference is None:
                self._mouth_reference = self._source_mouth()
            at_frame = torch.from_numpy(np.stack([self.to_frame_pixels(p) for p in points]))
            out = self.mouth.paint(out, at_frame, self._mouth_reference)
        return out

    def _reference(self, neutral: np.ndarray | None, tracker: DrivingTracker) -> np.ndarray | None:
        if neutral is None:
            return None
        face = tracker.detect(neutral)
        if face is None:
            raise DrivingError("no face was found in the neutral driving frame; choose another --neutral-frame")
        tracker.track.last = None  # the neutral frame must not steer which face the stream follows
        return face

    def _prepared(
        self, driving_frames: Iterable[np.ndarray], options: AnimateOptions, tracker: DrivingTracker,
        reference_face: np.ndarray | None,
    ) -> Iterator[tuple[DrivingFrame, np.ndarray, np.ndarray, np.ndarray]]:
        """Driving frames -> (frame, target points, landmark image, driving crop box), in order.

        Everything per frame before synthesis: decoding (the iterable's own work), landmark
        detection, smoothing, motion transfer onto the source and rasterising.
        """
        ref = self.source.reference
        smoother = TemporalSmoother(options.smooth)
        transfer: MotionTransfer | None = None
        driving_box = None

        def ready(items):
            nonlocal transfer, driving_box
            for points, frame in items:
                if transfer is None:
                    # The neutral frame, or the first frame as smoothed (so that, with smoothing,
                    # the first output still reproduces the source's own landmarks).
                    base_box = reference_face.box if reference_face is not None else frame.box
                    base_points = reference_face.dense if reference_face is not None else points
                    driving_box = crop_box_for(base_box, frame.image.shape, self.prepare)
                    transfer = MotionTransfer(
                        options.motion, size=self.size, source_points=ref.dense,
                        reference_points=base_points, driver_box=driving_box,
                        expression_scale=options.expression_scale, retarget=options.retarget,
                        use_canonical=options.canonical_frame,
                        pose_filter=PoseFilter() if options.stabilize else None,
                    )
                target = transfer(points)
                yield frame, target, self.rasterizer(rasterizer_points(target, self.rasterizer), self.size), driving_box

        for frame in tracker(driving_frames):
            yield from ready(smoother.push(frame.dense, frame))
        yield from ready(smoother.flush())

    def animate(
        self,
        driving_frames: Iterable[np.ndarray],
        options: AnimateOptions | None = None,
        *,
        neutral: np.ndarray | None = None,
    ) -> Iterator[AnimatedFrame]:
        """Yield one :class:`AnimatedFrame` per driving frame, in order.

        Args:
            driving_frames: (H, W, 3) uint8 RGB frames (any iterable; consumed lazily).
            options: motion mode, smoothing, batch size, paste-back, face index, precision.
            neutral: the driving frame whose landmarks relative motion is measured from;
                by default the first frame with a face.

        Raises:
            SourceError: no source was set.
            DrivingError: the driving frames show no face.
        """
        options = options or AnimateOptions()
        if self.source is None:
            raise SourceError("no source person; call set_source (or load_source) before animating")
        self._autocast(options.precision)  # fail early on a precision the device cannot run
        stats = self.stats = AnimationStats()
        tracker = DrivingTracker(self.landmarker, face_index=options.face_index)
        reference_face = self._reference(neutral, tracker)
        ref = self.source.reference
        frame_size = self.frame_size
        scale = frame_size / self.size  # landmarks are in the model's crop pixels
        paste = PasteBack(ref.photo, ref.box, frame_size, ref.ibug68 * scale) if options.paste_back else None
        radius = self.model.temporal_radius
        window = TemporalWindow(radius) if radius > 0 else None
        batch: list[tuple[DrivingFrame, np.ndarray, np.ndarray]] = []
        driving_box = None
        prepared = self._prepared(driving_frames, options, tracker, reference_face)
        if options.overlap:
            # decoding, landmarks and rasterising of the next frames run while this batch is synthesised
            prepared = prefetch(prepared, depth=2 * options.batch_size)

        def flush() -> Iterator[AnimatedFrame]:
            if not batch:
                return
            t0 = time.perf_counter()
            images = self.synthesize(image_to_tensor(np.stack([b[2] for b in batch])), options.precision,
                                     points=[b[1] for b in batch] if options.mouth else None)
            stats.seconds["synthesis"] += time.perf_counter() - t0
            done = [((frame, target), image) for (frame, target, _), image in zip(batch, images)]
            batch.clear()
            if window is not None:  # each frame waits for its neighbours
                done = [pair for item, image in done for pair in window.push(item, image)]
            yield from emit(done)

        def emit(done: list) -> Iterator[AnimatedFrame]:
            if not done:
                return
            t0 = time.perf_counter()
            images = torch.stack([image for _, image in done])
            if window is not None:
                with torch.no_grad(), self._autocast(options.precision):
                    images = self.model.postprocess(images).float()
            frames = images.add(1).mul(127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            stats.seconds["synthesis"] += time.perf_counter() - t0
            for ((frame, target), _), image in zip(done, frames):
                pasted = None
                if paste is not None:
                    t0 = time.perf_counter()
                    pasted = paste(image, ibug68_points(target) * scale)
                    stats.seconds["paste_back"] += time.perf_counter() - t0
                stats.frames += 1
                yield AnimatedFrame(
                    index=frame.index, image=image, driving=frame.image, driving_box=driving_box,
                    landmarks=rasterizer_points(target, self.rasterizer), face_found=frame.face_found,
                    pasted=pasted,
                )

        for frame, target, drawing, driving_box in prepared:
            batch.append((frame, target, drawing))
            stats.seconds["landmarks"] = tracker.seconds_detecting
            if len(batch) == options.batch_size:
                yield from flush()
        yield from flush()
        if window is not None:
            yield from emit(window.flush())
        stats.seconds["landmarks"] = tracker.seconds_detecting
        stats.frames_without_face = tracker.frames_without_face
        stats.frames_with_several_faces = tracker.frames_with_several_faces
