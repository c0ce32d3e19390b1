"""facegate.hardware: board profiles, systemd units, udev rules and the bundle used to flash boards."""
