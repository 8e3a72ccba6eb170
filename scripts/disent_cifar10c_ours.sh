#!/usr/bin/env bash
# DisEnt Table 1: cifar10c, ours (see scripts/disent_sweep.sh for the environment variables).
exec bash "$(dirname "$0")/disent_sweep.sh" cifar10c ours
