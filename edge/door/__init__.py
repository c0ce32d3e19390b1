"""The door unit: its configuration schema, camera sources, tracking, k-of-n policy, fail-secure relay,
audit log, kiosk overlay, local status server and systemd notifications, and the loop that runs them."""
