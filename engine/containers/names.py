"""Container names: dockerd's validation rule and its `adjective_surname` generated names.

The word lists are our own: friendly adjectives, and surnames of scientists, mathematicians
and engineers.  Like dockerd, a generated name gets a random digit appended from the second
attempt on, and after six collisions the caller's fallback (dockerd uses the short id) is used.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable

from ..errors import InvalidParameter

VALID_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_VALID_NAME = re.compile(rf"^/?{VALID_NAME_CHARS}+$")

ADJECTIVES = (
    "agile amber ample ardent astute balmy blithe bold brave breezy bright brisk calm candid "
    "careful cheerful civic clever cosmic cozy crisp curious dapper daring dazzling deft devoted "
    "dreamy eager earnest elated elegant epic fabled fearless festive fervent fluent fond frank "
    "gallant gentle gifted glad gleeful golden graceful grand hardy hearty honest hopeful humble "
    "jolly jovial keen kind lively loyal lucid lucky mellow merry mighty modest nimble noble "
    "optimistic patient peaceful placid playful plucky polished proud quick quiet radiant rapid "
    "ready resolute robust rustic serene sharp shiny sincere sleek smooth snappy spirited spry "
    "steady stoic sturdy sunny swift tender thoughtful tidy tranquil trusty upbeat valiant "
    "vibrant vivid warm wise witty zealous zesty"
).split()

SURNAMES = (
    "adleman agnesi alhazen allen ampere archimedes avicenna avogadro babbage backus bardeen "
    "bernoulli bessel bohr boltzmann boole bose boyle brahe brattain brunel cantor carnot cauchy "
    "cavendish cerf chandrasekhar clausius cooley copernicus cormack coulomb cray curie dalton "
    "darwin descartes diesel diffie dijkstra dirac doppler edison einstein engelbart ericsson "
    "euclid euler faraday fermat fermi feynman fibonacci fleming fourier franklin fresnel galileo "
    "galois gauss germain gibbs goldwasser goodall hamming harvey hawking heisenberg hellman hertz "
    "hilbert hoare hodgkin hollerith hooke hopper hounsfield hubble huffman huygens hypatia jacobi "
    "jenner joule kahan kelvin kepler kernighan khwarizmi kilby knuth kolmogorov lagrange lamarr "
    "lamport laplace leavitt leibniz liskov lister lorentz lovelace marconi maxwell mccarthy "
    "mcclintock meitner mendel mendeleev metcalfe michelson minsky mirzakhani morse napier nash "
    "naur neumann newton noether noyce nyquist ohm pascal pasteur pauli pauling perlman pike "
    "planck poincare ptolemy ramanujan rayleigh riemann ritchie rivest rutherford sagan salk "
    "schrodinger shamir shannon shockley siemens snell somerville stephenson stokes stroustrup "
    "sutherland telford tesla thompson torvalds turing tusi vesalius volta watt wiles wirth "
    "wozniak wright yalow young zuse"
).split()


def validate_name(name: str) -> str:
    """A user-given container name without its leading "/"; InvalidParameter if not allowed."""
    if not _VALID_NAME.match(name):
        raise InvalidParameter(f"Invalid container name ({name}), only {VALID_NAME_CHARS} are allowed")
    return name[1:] if name.startswith("/") else name


def random_name(retry: int, rng: random.Random | None = None) -> str:
    """One candidate: `adjective_surname`, plus a digit 0-9 when retrying."""
    r = rng or random
    while True:
        name = f"{r.choice(ADJECTIVES)}_{r.choice(SURNAMES)}"
        # dockerd never hands out this one; neither do we.
        if name != "boring_wozniak":
            break
    if retry > 0:
        name += str(r.randrange(10))
    return name


def generate_name(taken: Callable[[str], bool], fallback: str | None = None,
                  rng: random.Random | None = None) -> str:
    """A free generated name (no leading "/").

    Six tries as dockerd makes; then `fallback` (dockerd: the container's short id) if given,
    else keep trying with two digits appended, which always ends well before the
    ~1.6 million such names run out.
    """
    for retry in range(6):
        name = random_name(retry, rng)
        if not taken(name):
            return name
    if fallback is not None:
        return fallback
    r = rng or random
    while True:
        name = random_name(0, rng) + f"{r.randrange(100):02d}"
        if not taken(name):
            return name
