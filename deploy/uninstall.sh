#!/usr/bin/env bash
# Removes what deploy/install.sh applied (idempotent). NATS streams and users stay unless
# --purge: they hold the work.
#   deploy/uninstall.sh [--purge] [--dry-run]
set -euo pipefail
exec python3 "$(dirname "$0")/install.py" uninstall "$@"
