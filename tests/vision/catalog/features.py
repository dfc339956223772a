"""A real but weak image feature for catalog tests: colour histogram + gradient orientations.

Not a semantic model and not a stand-in for one: it describes colours and edge directions, so
it recognises *the same picture* cropped, resized or re-encoded (what the retrieval tests ask)
and nothing about what the picture shows. It satisfies ``vision.catalog.VisualModel`` so the
catalog's image paths run on real pixels without a neural network in the test suite.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SIDE_PX = 64
HUE_BINS, SAT_BINS, VAL_BINS = 8, 4, 4
CELLS, ORIENT_BINS = 4, 8


class ColourGradientFeatures:
    space_id = "test-colour-gradient-v1"
    dim = HUE_BINS * SAT_BINS * VAL_BINS + CELLS * CELLS * ORIENT_BINS

    def visual_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self._one(im) for im in images]).astype(np.float32)

    def _one(self, image: np.ndarray) -> np.ndarray:
        small = cv2.resize(image, (SIDE_PX, SIDE_PX), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        colour = cv2.calcHist(
            [hsv], [0, 1, 2], None, [HUE_BINS, SAT_BINS, VAL_BINS], [0, 180, 0, 256, 0, 256]
        ).ravel()
        colour = np.sqrt(colour / colour.sum())
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
        mag, ang = cv2.cartToPolar(gx, gy)
        bins = np.minimum((ang % np.pi) / np.pi * ORIENT_BINS, ORIENT_BINS - 1).astype(int)
        cell = SIDE_PX // CELLS
        grad = np.zeros((CELLS, CELLS, ORIENT_BINS), np.float32)
        for i in range(CELLS):
            for j in range(CELLS):
                sl = (slice(i * cell, (i + 1) * cell), slice(j * cell, (j + 1) * cell))
                grad[i, j] = np.bincount(bins[sl].ravel(), mag[sl].ravel(), ORIENT_BINS)
        grad = np.sqrt(grad.ravel() / (grad.sum() + 1e-6))
        v = np.concatenate([colour, grad])
        return v / np.linalg.norm(v)
