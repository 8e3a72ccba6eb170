#!/usr/bin/env bash
# DisEnt Table 1: cmnist, ours (see scripts/disent_sweep.sh for the environment variables).
exec bash "$(dirname "$0")/disent_sweep.sh" cmnist ours
