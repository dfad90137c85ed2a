"""Geometry of the H1, L1, V1 interferometers: antenna patterns and light-travel delays.

Coordinates are Earth-fixed (ITRF-like, metres). Vertex positions and arm unit vectors are the LAL values
(``LALDetectors.h``: ``LAL_LHO_4K``, ``LAL_LLO_4K``, ``LAL_VIRGO``). Sky positions are equatorial (right
ascension ``ra``, declination ``dec``, radians); ``gmst`` (radians) is Greenwich mean sidereal time, which
rotates the Earth-fixed frame against the sky. ``psi`` is the polarization angle (radians) in the LAL
convention (``XLALComputeDetAMResponse``).

All functions broadcast over array-valued ``ra``, ``dec``, ``psi``, ``gmst``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEED_OF_LIGHT_M_S = 299_792_458.0


@dataclass(frozen=True)
class Detector:
    """One L-shaped interferometer. ``vertex``: (3,) m; ``xarm``, ``yarm``: (3,) unit vectors, Earth-fixed."""

    name: str
    vertex: tuple[float, float, float]
    xarm: tuple[float, float, float]
    yarm: tuple[float, float, float]

    @property
    def response(self) -> np.ndarray:
        """Detector tensor ``D = (x x^T - y y^T) / 2``: (3, 3) float64, dimensionless."""
        x = np.asarray(self.xarm, dtype=np.float64)
        y = np.asarray(self.yarm, dtype=np.float64)
        return 0.5 * (np.outer(x, x) - np.outer(y, y))


DETECTORS: dict[str, Detector] = {
    "H1": Detector(
        "H1",
        vertex=(-2.16141492636e6, -3.83469517889e6, 4.60035022664e6),
        xarm=(-0.22389266154, 0.79983062746, 0.55690487831),
        yarm=(-0.91397818574, 0.02609403989, -0.40492342125),
    ),
    "L1": Detector(
        "L1",
        vertex=(-7.427604192e4, -5.49628371971e6, 3.22425701744e6),
        xarm=(-0.95457412153, -0.14158077340, -0.26218911324),
        yarm=(0.29774156894, -0.48791033647, -0.82054461286),
    ),
    "V1": Detector(
        "V1",
        vertex=(4.54637409900e6, 8.42989697626e5, 4.37857696241e6),
        xarm=(-0.70045821479, 0.20848948619, 0.68256166277),
        yarm=(-0.05379255368, -0.96908180549, 0.24080451708),
    ),
}

# Channel order of G2Net strain arrays: row 0 = H1, row 1 = L1, row 2 = V1.
NETWORK: tuple[str, ...] = ("H1", "L1", "V1")


def get_detector(detector: str | Detector) -> Detector:
    """The ``Detector`` for a name ('H1', 'L1', 'V1'); a ``Detector`` passes through."""
    if isinstance(detector, Detector):
        return detector
    try:
        return DETECTORS[detector]
    except KeyError:
        raise ValueError(f"unknown detector {detector!r}; expected one of {sorted(DETECTORS)}") from None


def source_direction(ra, dec, gmst) -> np.ndarray:
    """Unit vector towards the source in Earth-fixed coordinates: (..., 3) float64.

    With Greenwich hour angle ``gha = gmst - ra``: ``n = (cos dec cos gha, -cos dec sin gha, sin dec)``.
    """
    gha = np.asarray(gmst, dtype=np.float64) - np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    cosdec = np.cos(dec)
    return np.stack(np.broadcast_arrays(cosdec * np.cos(gha), -cosdec * np.sin(gha), np.sin(dec)), axis=-1)


def polarization_basis(ra, dec, psi, gmst) -> tuple[np.ndarray, np.ndarray]:
    """Wave-frame axes ``X``, ``Y`` (each (..., 3) float64, Earth-fixed), LAL convention.

    ``X``, ``Y`` and the propagation direction ``-n`` form a right-handed orthonormal triad;
    ``e+ = X X^T - Y Y^T`` and ``ex = X Y^T + Y X^T``.
    """
    gha = np.asarray(gmst, dtype=np.float64) - np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    psi = np.asarray(psi, dtype=np.float64)
    cosgha, singha = np.cos(gha), np.sin(gha)
    cosdec, sindec = np.cos(dec), np.sin(dec)
    cospsi, sinpsi = np.cos(psi), np.sin(psi)
    x = (
        -cospsi * singha - sinpsi * cosgha * sindec,
        -cospsi * cosgha + sinpsi * singha * sindec,
        sinpsi * cosdec,
    )
    y = (
        sinpsi * singha - cospsi * cosgha * sindec,
        sinpsi * cosgha + cospsi * singha * sindec,
        cospsi * cosdec,
    )
    return np.stack(np.broadcast_arrays(*x), axis=-1), np.stack(np.broadcast_arrays(*y), axis=-1)


def antenna_pattern(detector: str | Detector, ra, dec, psi, gmst) -> tuple[np.ndarray, np.ndarray]:
    """Antenna responses ``(F+, Fx)`` of ``detector`` for a source at (``ra``, ``dec``) rad, polarization
    ``psi`` rad, sidereal time ``gmst`` rad. Returns two float64 arrays of the broadcast input shape
    (0-d for scalar inputs), dimensionless, with ``F+^2 + Fx^2 <= 1``.

    ``F+ = X.D.X - Y.D.Y``, ``Fx = X.D.Y + Y.D.X`` with ``D`` the detector tensor.
    """
    d = get_detector(detector).response
    x, y = polarization_basis(ra, dec, psi, gmst)
    dx = x @ d
    dy = y @ d
    fplus = np.einsum("...i,...i->...", dx, x) - np.einsum("...i,...i->...", dy, y)
    fcross = np.einsum("...i,...i->...", dx, y) + np.einsum("...i,...i->...", dy, x)
    return fplus, fcross


def time_delay_from_geocenter(detector: str | Detector, ra, dec, gmst) -> np.ndarray:
    """Arrival time at ``detector`` minus arrival time at the geocenter, seconds (float64, broadcast shape).

    ``-r.n / c`` with ``r`` the vertex position and ``n`` the unit vector towards the source: a detector on the
    source's side of the Earth sees the wave first (negative delay). ``|delay| <= |r| / c`` (~21.3 ms).
    """
    r = np.asarray(get_detector(detector).vertex, dtype=np.float64)
    return -(source_direction(ra, dec, gmst) @ r) / SPEED_OF_LIGHT_M_S
