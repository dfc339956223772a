# onscreen serving image (CUDA-capable). Not built in this project's CI (no Docker engine there).
# torch 2.14.1 from PyPI bundles its CUDA 13 runtime libraries, so a slim Python base works on a
# GPU host with the NVIDIA container toolkit (`docker run --gpus all ...`); on a CPU host the
# same image runs on the CPU.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=false \
    HF_HUB_OFFLINE=1 \
    ONSCREEN_WEIGHTS_DIR=/opt/onscreen/weights

WORKDIR /opt/onscreen
COPY pyproject.toml README.md ./
COPY vision ./vision
COPY targeting ./targeting
COPY serving ./serving
COPY weights/manifest.toml ./weights/manifest.toml

# onnxruntime and onnxruntime-gpu install the same module: keep only the GPU build.
RUN pip install . \
 && pip uninstall -y onnxruntime \
 && pip install "onnxruntime-gpu>=1.18"

# Weights are fetched at build time, never at request time. The hub must be reachable here.
RUN onscreen weights fetch

COPY examples/rules ./rules
EXPOSE 50051 9090
CMD ["onscreen", "--help"]
