#!/usr/bin/env bash
# Regenerates certs-example/example-net with the project's own binary.
# EXAMPLE ONLY: these keys are public; never use them in earnest.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf example-net
est() { cargo run --quiet --locked -- "$@"; }
est network init --dir example-net --name example-net --ca-days 3650
est network add-bureau --dir example-net --code BR --name "Bureau BR (Latin America)" --addr 127.0.0.1:7401 --group CRIMJUST --cert-days 3650
est network add-bureau --dir example-net --code CV --name "Bureau CV (relay hub)" --addr 127.0.0.1:7402 --group CRIMJUST --cert-days 3650
est network add-bureau --dir example-net --code GH --name "Bureau GH (West Africa)" --addr 127.0.0.1:7403 --group CRIMJUST --cert-days 3650
est network add-bureau --dir example-net --code NG --name "Bureau NG (West Africa)" --addr 127.0.0.1:7404 --group CRIMJUST --cert-days 3650
est network show --dir example-net
