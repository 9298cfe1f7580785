# shellcheck shell=bash
# Sourced by every entry script: one place that says where things live.
# Safe to source twice; exports only, no side effects.

LLMOPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LLMOPS_ROOT
export LLMOPS_VENV="${LLMOPS_VENV:-$LLMOPS_ROOT/.venv}"
# Podman settings that work on hosts without systemd-delegated cgroups (see lab/containers.conf).
export CONTAINERS_CONF="${CONTAINERS_CONF:-$LLMOPS_ROOT/lab/containers.conf}"
export ANSIBLE_CONFIG="$LLMOPS_ROOT/ansible.cfg"
export PATH="$LLMOPS_VENV/bin:$PATH"
# Lab images, built locally by scripts/build-lab-images.sh (no registry is needed).
export LLMOPS_BASE_IMAGE="${LLMOPS_BASE_IMAGE:-localhost/llmops/debian:bookworm}"
export LLMOPS_NODE_IMAGE="${LLMOPS_NODE_IMAGE:-localhost/llmops/debian-systemd:bookworm}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
