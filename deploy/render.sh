#!/usr/bin/env bash
# Prints a deploy/ file with its ${VARIABLES} filled in from the environment. Every variable the file uses must be
# set: an unset one would deploy an empty value. Set to empty on purpose (CHAT_API_CORS_ORIGINS=) is allowed.
set -euo pipefail
file=${1:?usage: deploy/render.sh FILE}
vars=$(grep -o '\${[A-Z0-9_]*}' "$file" | sort -u)
for var in $vars; do
  # ${VAR} -> VAR without ${var:2:-1}: a negative length needs bash 4.2, and macOS ships bash 3.2.
  name=${var#??}
  name=${name%?}
  [ -n "${!name+set}" ] || { echo "deploy/render.sh: $name is not set (used by $file)" >&2; exit 1; }
done
envsubst "$(echo $vars)" <"$file"
