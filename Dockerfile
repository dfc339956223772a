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

# Example rules; mount your own over /opt/onscreen/rules (they are hot-reloaded).
RUN mkdir -p /var/lib/onscreen
COPY examples/rules ./rules
EXPOSE 50051 9090
# The gRPC health protocol, through the project's own client (no extra probe binary).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["onscreen", "health", "--server", "localhost:50051", "--timeout", "3"]
# Rules that use concepts need CLIP: its weights were fetched above (the build fails if not).
CMD ["onscreen", "serve", "--rules", "/opt/onscreen/rules", "--host", "0.0.0.0", "--port", "50051", \
     "--metrics-port", "9090", "--store", "/var/lib/onscreen/placements.sqlite"]
