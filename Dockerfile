# retrain and label_image in a container: TensorFlow's official image plus this package.
#
#   CPU: docker build -t retrain .
#   GPU: docker build -t retrain:gpu --build-arg VARIANT=-gpu .   (then: docker run --gpus all ...)
#
# Run (the current folder is /work; write outputs there, the classic /tmp defaults stay inside):
#   docker run --rm -v "$PWD":/work retrain retrain --image_dir flower_photos \
#     --output_graph retrained_graph.pb --output_labels retrained_labels.txt
#   docker run --rm -v "$PWD":/work retrain label_image --graph retrained_graph.pb \
#     --labels retrained_labels.txt photo.jpg
# README.md ("Docker") has the details.

# The TensorFlow release this project is tested with; VARIANT "-gpu" picks its CUDA build.
ARG TF_VERSION=2.21.0
ARG VARIANT=""
FROM tensorflow/tensorflow:${TF_VERSION}${VARIANT}

# The image is the environment: pip may install into its Python even where that Python is
# marked as managed by the system (PEP 668).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# Installed exactly as README.md says; TensorFlow itself comes from the base image.
WORKDIR /opt/retrain
COPY . .
RUN pip install .

# Not root: outputs on the mounted /work belong to an ordinary user (or to the host user with
# `docker run --user "$(id -u):$(id -g)"`); downloads are cached in /work/.cache either way.
# uid/gid 1000 (the usual first user of a Linux host), numeric so Kubernetes' runAsNonRoot
# can check it; --non-unique in case the base image already has a user 1000.
RUN groupadd --gid 1000 --non-unique retrain \
    && useradd --uid 1000 --gid 1000 --non-unique --create-home --shell /bin/bash retrain \
    && mkdir -p /work \
    && chown 1000:1000 /work
ENV RETRAIN_CACHE_DIR=/work/.cache/retrain \
    TFHUB_CACHE_DIR=/work/.cache/tfhub_modules
USER 1000:1000
WORKDIR /work
VOLUME ["/work"]

CMD ["retrain", "--help"]
