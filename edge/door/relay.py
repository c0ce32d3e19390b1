"""The door relay, fail-secure.

Wiring convention (see hardware/WIRING.md): the lock is a fail-secure strike/maglock driver that is
**unlocked only while the relay is energised**. Locked therefore means "GPIO output low", which is
also what the pin falls back to when the process exits or dies (the kernel releases the line and
the relay board's pull-down holds it low). The software side drives the relay locked at start, on
every exception, on SIGTERM/SIGINT, at interpreter exit, and after every unlock pulse.

Backends: gpiozero (Raspberry Pi), Jetson.GPIO (Jetson), and a mock that records every transition
for tests and laptops. gpiozero and Jetson.GPIO must never share an environment (Jetson.GPIO ships
its own RPi/GPIO module), so each is imported only when chosen.
"""
from __future__ import annotations

import atexit
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from facegate.edge.errors import RelayError

log = logging.getLogger(__name__)



class Relay(Protocol):
    name: str

    def lock(self) -> None: ...

    def unlock(self) -> None: ...

    @property
    def locked(self) -> bool: ...

    def close(self) -> None: ...


@dataclass
class MockRelay:
    """Records (time, 'locked'|'unlocked') transitions; starts locked. With `state_file`, every
    transition is also appended there (so another process — a test — can see the relay)."""

    name: str = "mock"
    state_file: str | None = None
    transitions: list[tuple[float, str]] = field(default_factory=list)
    _locked: bool = True

    def __post_init__(self) -> None:
        self.lock()

    def _record(self, state: str) -> None:
        self.transitions.append((time.monotonic(), state))
        if self.state_file:
            with open(self.state_file, "a") as fh:
                fh.write(f"{time.time():.3f} {state}\n")
                fh.flush()

    def lock(self) -> None:
        self._locked = True
        self._record("locked")

    def unlock(self) -> None:
        self._locked = False
        self._record("unlocked")

    @property
    def locked(self) -> bool:
        return self._locked

    def close(self) -> None:
        self.lock()


class GpioZeroRelay:
    """Raspberry Pi: gpiozero OutputDevice, energised = unlocked. GPIOZERO_PIN_FACTORY=mock off a Pi."""

    name = "gpiozero"

    def __init__(self, pin: int | str, active_high: bool = True) -> None:
        try:
            from gpiozero import OutputDevice
        except ImportError as exc:
            raise RelayError("the gpiozero relay needs: pip install 'facegate[pi]'") from exc
        try:
            self._dev = OutputDevice(pin, active_high=active_high, initial_value=False)
        except Exception as exc:  # gpiozero raises many types (no pin factory, pin in use, ...)
            raise RelayError(f"cannot drive GPIO {pin} with gpiozero: {exc}. Off a Raspberry Pi set "
                             "GPIOZERO_PIN_FACTORY=mock; on a Pi check the user is in the gpio group") from exc

    def lock(self) -> None:
        self._dev.off()

    def unlock(self) -> None:
        self._dev.on()

    @property
    def locked(self) -> bool:
        return not bool(self._dev.value)

    @property
    def pin(self):
        return self._dev.pin

    def close(self) -> None:
        try:
            self._dev.off()
        finally:
            self._dev.close()


class JetsonRelay:
    """Jetson: Jetson.GPIO in BOARD numbering, output low = locked."""

    name = "jetson"

    def __init__(self, pin: int) -> None:
        try:
            import Jetson.GPIO as GPIO  # noqa: N814 - the library's own name
        except ImportError as exc:
            raise RelayError("the Jetson relay needs: pip install 'facegate[jetson]' (never together with "
                             "RPi.GPIO/gpiozero: Jetson.GPIO replaces the RPi module)") from exc
        self._gpio = GPIO
        self._pin = pin
        GPIO.setmode(GPIO.BOARD)
        GPIO.setup(pin, GPIO.OUT, initial=GPIO.LOW)

    def lock(self) -> None:
        self._gpio.output(self._pin, self._gpio.LOW)

    def unlock(self) -> None:
        self._gpio.output(self._pin, self._gpio.HIGH)

    @property
    def locked(self) -> bool:
        return self._gpio.input(self._pin) == self._gpio.LOW

    def close(self) -> None:
        try:
            self.lock()
        finally:
            self._gpio.cleanup(self._pin)


def make_relay(kind: str = "mock", pin: int | str = 17, active_high: bool = True,
               state_file: str | None = None) -> Relay:
    if kind == "mock":
        return MockRelay(state_file=state_file)
    if kind == "gpiozero":
        return GpioZeroRelay(pin, active_high)
    if kind == "jetson":
        return JetsonRelay(int(pin))
    raise RelayError(f"unknown relay kind {kind!r}; use mock, gpiozero or jetson")


def read_released_line(kind: str, pin: int | str) -> bool:
    """The level of the relay's GPIO line with nobody driving it (True: high = unlock), read as a
    floating input: after the door process died, only the wiring's pull-down holds it low."""
    if kind == "gpiozero":
        from gpiozero import InputDevice
        dev = InputDevice(pin, pull_up=None, active_state=True)
        try:
            return bool(dev.value)
        finally:
            dev.close()
    if kind == "jetson":
        import Jetson.GPIO as GPIO  # noqa: N814
        GPIO.setmode(GPIO.BOARD)
        GPIO.setup(int(pin), GPIO.IN)
        try:
            return GPIO.input(int(pin)) == GPIO.HIGH
        finally:
            GPIO.cleanup(int(pin))
    raise RelayError(f"the {kind} relay has no GPIO line to read")


class DoorLock:
    """Pulses the relay open for a fixed time and guarantees it ends locked.

    `tick()` (called every loop iteration) re-locks when the pulse is over; `close()` and the
    atexit hook lock unconditionally.
    """

    def __init__(self, relay: Relay, pulse_seconds: float = 3.0) -> None:
        self.relay = relay
        self.pulse_seconds = pulse_seconds
        self._relock_at: float | None = None
        self.relay.lock()
        atexit.register(self._emergency_lock)

    def _emergency_lock(self) -> None:
        try:
            self.relay.lock()
        except Exception:  # pragma: no cover - last resort at interpreter exit
            log.exception("could not lock the relay at exit")

    def open_for(self, seconds: float | None = None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.relay.unlock()
        self._relock_at = now + (self.pulse_seconds if seconds is None else seconds)

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._relock_at is not None and now >= self._relock_at:
            self.relay.lock()
            self._relock_at = None

    @property
    def is_open(self) -> bool:
        return not self.relay.locked

    def lock_now(self) -> None:
        self._relock_at = None
        self.relay.lock()

    def close(self) -> None:
        self.lock_now()
        self.relay.close()
        atexit.unregister(self._emergency_lock)
