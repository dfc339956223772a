"""FAISS runs single-threaded in these tests: on the shared 2-core CI machine OpenMP's spinning
worker threads make small HNSW builds 3x slower, not faster, and the tests time nothing."""

from __future__ import annotations

import faiss

faiss.omp_set_num_threads(1)
