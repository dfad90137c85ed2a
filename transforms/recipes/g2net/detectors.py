"""The H1, L1, V1 interferometers through ``pycbc.detector.Detector`` (LAL's detector geometry).

Sky positions are equatorial (right ascension ``ra``, declination ``dec``, radians); ``psi`` is the polarization
angle (radians, LAL convention); ``gps_time`` (s) fixes the Earth's orientation. Nothing is re-implemented here:
antenna patterns are ``Detector.antenna_pattern``, delays ``Detector.time_delay_from_earth_center`` and
inter-site light-travel times ``Detector.light_travel_time_to_detector``.
"""

from __future__ import annotations

import functools

# Channel order of G2Net strain arrays: row 0 = H1, row 1 = L1, row 2 = V1.
NETWORK: tuple[str, ...] = ("H1", "L1", "V1")
EARTH_LIGHT_TIME_S = 0.0213  # largest |geocenter-to-detector delay| of the network (Earth radius / c), seconds


@functools.lru_cache(maxsize=8)
def get_detector(name: str):
    """The ``pycbc.detector.Detector`` of ``name`` ('H1', 'L1', 'V1'), cached per process."""
    if name not in NETWORK:
        raise ValueError(f"unknown detector {name!r}; expected one of {list(NETWORK)}")
    from pycbc.detector import Detector  # lazy: pycbc costs ~2 s to import

    return Detector(name)


def antenna_pattern(detector: str, ra: float, dec: float, psi: float, gps_time: float) -> tuple[float, float]:
    """``(F+, Fx)`` of ``detector`` for a source at (``ra``, ``dec``), polarization ``psi``, at ``gps_time``."""
    fplus, fcross = get_detector(detector).antenna_pattern(ra, dec, psi, gps_time)
    return float(fplus), float(fcross)


def time_delay_from_geocenter(detector: str, ra: float, dec: float, gps_time: float) -> float:
    """Arrival time at ``detector`` minus arrival time at the geocenter, seconds (|delay| <= ~21.3 ms)."""
    return float(get_detector(detector).time_delay_from_earth_center(ra, dec, gps_time))


def light_travel_time(det_a: str, det_b: str) -> float:
    """Light-travel time (s) between two detectors' vertices (H1-L1 10.0 ms, H1-V1 27.3 ms)."""
    return float(get_detector(det_a).light_travel_time_to_detector(get_detector(det_b)))
