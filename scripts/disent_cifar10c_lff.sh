#!/usr/bin/env bash
# DisEnt Table 1: cifar10c, lff (see scripts/disent_sweep.sh for the environment variables).
exec bash "$(dirname "$0")/disent_sweep.sh" cifar10c lff
