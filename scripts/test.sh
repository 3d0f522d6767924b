#!/usr/bin/env bash
# Runs the test suite. Starts a JACK server with its dummy backend (a real-time clock with no sound
# card) for the JACK tests when none is running, and stops it afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."
started_jack=""
if command -v jackd >/dev/null 2>&1 && ! (command -v jack_lsp >/dev/null && jack_lsp >/dev/null 2>&1); then
  JACK_NO_AUDIO_RESERVATION=1 jackd --no-realtime -d dummy -r 44100 -p 512 >/tmp/livedance-jackd.log 2>&1 &
  started_jack=$!
  for _ in $(seq 1 50); do jack_lsp >/dev/null 2>&1 && break; sleep 0.1; done
  export LIVEDANCE_JACK=1
fi
.venv/bin/python -m pytest -q "$@"
rc=$?
if [ -n "$started_jack" ]; then kill "$started_jack" 2>/dev/null; wait "$started_jack" 2>/dev/null; fi
exit $rc
