"""Ray Tune: the sweep over trial configs, restore, and the probe fan-out on trial completion."""
