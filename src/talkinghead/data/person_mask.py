"""Person / background separation with mediapipe's selfie segmentation (offline)."""

from __future__ import annotations

import numpy as np

from talkinghead.data.landmarks.mediapipe_backend import quiet_until_idle, run_graph


class PersonSegmenter:
    """Soft person mask of an RGB image: (H, W) float32 in [0, 1], 1 = person."""

    def __init__(self):
        import mediapipe as mp

        # model 0 is the general (square, 256x256) model, suited to head-and-shoulders crops.
        with quiet_until_idle([]) as built:  # TFLite start-up lines (shown with -v)
            built.append(mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0))
        self._model = built[0]
        self._warmed: set[int] = set()

    def mask(self, image: np.ndarray) -> np.ndarray:
        result = run_graph(self._model, np.ascontiguousarray(image), self._warmed)
        return result.segmentation_mask.astype(np.float32)

    def close(self) -> None:
        self._model.close()
