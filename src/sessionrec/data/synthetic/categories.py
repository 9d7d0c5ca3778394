"""The synthetic shop's category data: intents, their categories, brands and product lines.

Data only, read by the catalog builder; the click generator sees categories only through
a catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

DEMO_CATEGORIES: tuple[str, ...] = ("running shoes", "sports shorts", "fitness trackers")
"""Categories of the demo session returned by :func:`demo_session`."""


@dataclass(frozen=True)
class Category:
    """One product category of an intent."""

    name: str  # category label, lower case plural: "running shoes"
    noun: str  # how a product name ends: "Running Shoes", "Fitness Tracker"
    price: float  # median price in the shop's currency


@dataclass(frozen=True)
class Intent:
    """A shopping intent: related categories, and the name parts of their products."""

    name: str
    weight: float  # relative traffic of the intent (scales its categories' sizes)
    brands: tuple[str, ...]
    lines: tuple[str, ...]
    categories: tuple[Category, ...]


def _cats(*spec: tuple[str, str, float]) -> tuple[Category, ...]:
    return tuple(Category(name, noun, price) for name, noun, price in spec)


# Categories are listed so that neighbours are related: a jump inside an intent prefers
# categories close in this order (on a ring), which gives sequence-aware models an order
# signal beyond mere co-occurrence.
INTENTS: tuple[Intent, ...] = (
    Intent(
        "sportswear/fitness",
        1.2,
        ("Swift", "AeroFit", "PulseBand", "Stride", "Vertex", "Kinetic", "CoreFlex", "Zenith"),
        ("Runner", "Tempo", "Sprint", "Flow", "Endure", "Glide", "Boost", "Pace"),
        _cats(
            ("running shoes", "Running Shoes", 89.0),
            ("sports shorts", "Sports Shorts", 29.0),
            ("fitness trackers", "Fitness Tracker", 79.0),
            ("sports bras", "Sports Bra", 35.0),
            ("water bottles", "Water Bottle", 19.0),
            ("yoga mats", "Yoga Mat", 39.0),
            ("resistance bands", "Resistance Bands", 17.0),
            ("gym bags", "Gym Bag", 45.0),
        ),
    ),
    Intent(
        "kitchen",
        1.0,
        ("Culina", "Ferro", "Copperleaf", "Brava", "Saltbox", "Tavola", "Hearthstone"),
        ("Classic", "Artisan", "Everyday", "Signature", "Prime", "Heritage", "Bistro"),
        _cats(
            ("frying pans", "Frying Pan", 39.0),
            ("chef knives", "Chef Knife", 59.0),
            ("cutting boards", "Cutting Board", 25.0),
            ("mixing bowls", "Mixing Bowl Set", 22.0),
            ("blenders", "Blender", 69.0),
            ("coffee makers", "Coffee Maker", 89.0),
        ),
    ),
    Intent(
        "electronics",
        1.3,
        ("Voltix", "SonicWave", "Nexa", "Lumo", "Ampere", "Qubit", "Zentro", "Fluxon"),
        ("Air", "Core", "Ultra", "Flex", "Go", "Pulse", "Nano", "Studio"),
        _cats(
            ("headphones", "Headphones", 79.0),
            ("bluetooth speakers", "Bluetooth Speaker", 59.0),
            ("power banks", "Power Bank", 35.0),
            ("chargers", "Charger", 25.0),
            ("usb cables", "USB Cable", 12.0),
            ("phone cases", "Phone Case", 15.0),
        ),
    ),
    Intent(
        "home",
        1.0,
        ("Linden", "Casa Nova", "Oakridge", "Soft Nest", "Lumen", "Nordic Loft", "Willow"),
        ("Cloud", "Serene", "Haven", "Drift", "Luxe", "Calm", "Aurora"),
        _cats(
            ("bedding", "Bedding Set", 59.0),
            ("cushions", "Cushion", 22.0),
            ("curtains", "Curtains", 39.0),
            ("rugs", "Rug", 79.0),
            ("lamps", "Lamp", 45.0),
        ),
    ),
    Intent(
        "outdoor/camping",
        0.7,
        ("Trailhead", "Summit Gear", "Northbound", "Wildpine", "Ridgeline", "Basecamp"),
        ("Explorer", "Alpine", "Ranger", "Nomad", "Voyager", "Scout", "Horizon"),
        _cats(
            ("tents", "Tent", 149.0),
            ("sleeping bags", "Sleeping Bag", 69.0),
            ("camping stoves", "Camping Stove", 49.0),
            ("headlamps", "Headlamp", 25.0),
            ("backpacks", "Backpack", 79.0),
            ("hiking boots", "Hiking Boots", 119.0),
        ),
    ),
    Intent(
        "baby",
        0.6,
        ("Little Sprout", "Cuddle Bear", "Tiny Steps", "Moonbeam", "Happy Nest", "Snugglebug"),
        ("Comfort", "Gentle", "Dream", "Sunny", "Pure", "Care"),
        _cats(
            ("diapers", "Diapers", 24.0),
            ("pacifiers", "Pacifier", 8.0),
            ("baby bottles", "Baby Bottle", 15.0),
            ("baby monitors", "Baby Monitor", 89.0),
            ("strollers", "Stroller", 299.0),
        ),
    ),
    Intent(
        "beauty",
        0.9,
        ("Lumiere", "Velvet Rose", "Pure Glow", "Aurelia", "Silk & Stone", "Bloom", "Nuve"),
        ("Radiance", "Hydra", "Botanica", "Glow", "Matte", "Essence", "Velour"),
        _cats(
            ("face creams", "Face Cream", 29.0),
            ("shampoos", "Shampoo", 12.0),
            ("perfumes", "Eau de Parfum", 69.0),
            ("lipsticks", "Lipstick", 18.0),
            ("nail polish", "Nail Polish", 9.0),
        ),
    ),
    Intent(
        "pets",
        0.6,
        ("Happy Paws", "Whisker & Co", "Good Boy", "Purrfect", "Barkley", "Tailwind"),
        ("Premium", "Natural", "Active", "Cozy", "Vital", "Senior"),
        _cats(
            ("dog food", "Dog Food", 39.0),
            ("dog leashes", "Dog Leash", 19.0),
            ("pet beds", "Pet Bed", 45.0),
            ("cat toys", "Cat Toy", 9.0),
            ("cat litter", "Cat Litter", 15.0),
        ),
    ),
)

TAXONOMY: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {intent.name: tuple(c.name for c in intent.categories) for intent in INTENTS}
)
"""Intent -> its categories, in catalog order (read-only)."""

MODEL_SUFFIXES = ("Pro", "Lite", "Max", "Plus", "X", "Sport", "Elite", "Mini")
