"""The organisation that runs the simulated cluster: its name, e-mail domain and container registry.

A ``clean`` world keeps the historical placeholders (``example.com``, ``registry.example.com``); a
``noisy`` world draws them from the seed, in one of the shapes real sites have (a self-hosted registry,
a cloud provider's registry, an organisation on a public host such as ``ghcr.io``), so nothing
downstream (rules, tests, baselines) can rely on a fixed name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

_COMPANIES: Final = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "vandelay",
    "tyrell",
    "soylent",
    "wonka",
    "nakatomi",
    "oscorp",
    "aperture",
    "cyberdyne",
    "dunder",
    "massive",
    "gringotts",
)
_SUFFIXES: Final = ("", "-corp", "-labs", "-tech", "-group", "-cloud")
_TLDS: Final = ("com", "io", "net", "co", "dev")
_REGIONS: Final = ("eu-west-1", "us-east-1", "us-west-2", "eu-central-1", "ap-southeast-2")
_GCP_REGIONS: Final = ("europe-west1", "us-central1", "us-east4", "asia-northeast1")


@dataclass(frozen=True)
class Site:
    company: str  # e.g. "globex-labs"
    domain: str  # people's e-mail domain
    #: prefix of the organisation's own images: "<registry>/<namespace>/<app>:<version>"
    registry: str


CLEAN_SITE: Final = Site("example", "example.com", "registry.example.com")


def noisy_site(seed: int) -> Site:
    """The organisation of a noisy world with this seed (its own random generator: no other draw moves)."""
    rng = random.Random(f"auditwatch-site:{seed}")
    base = rng.choice(_COMPANIES)
    company = base + rng.choice(_SUFFIXES)
    domain = f"{company}.{rng.choice(_TLDS)}"
    shape = rng.randrange(7)
    if shape == 0:
        registry = f"registry.{domain}"
    elif shape == 1:
        registry = f"harbor.{base}.internal"
    elif shape == 2:
        registry = f"{rng.randrange(10**11, 10**12)}.dkr.ecr.{rng.choice(_REGIONS)}.amazonaws.com"
    elif shape == 3:
        registry = f"{rng.choice(_GCP_REGIONS)}-docker.pkg.dev/{company}-prod/containers"
    elif shape == 4:
        registry = f"{base}prod.azurecr.io"
    elif shape == 5:
        registry = f"ghcr.io/{company}"  # the organisation on a public host: the host alone proves nothing
    else:
        registry = f"{company}.jfrog.io/docker-local"
    return Site(company, domain, registry)
