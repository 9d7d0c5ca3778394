"""A seeded synthetic shop: a catalog of named products and a visitor click log.

The demo, the tests and the scale benchmark need click data whose structure is *known*,
so that a recommendation can be judged by eye ("running shoes, sports shorts, a fitness
tracker: the model suggests sports bras and water bottles") and a test can assert a
property with a computed answer. Public logs are large, licensed and opaque; this module
makes a realistic stand-in in a fraction of a second (100k clicks) or well under a minute
(20M clicks), fully vectorised in numpy.

The world it simulates
----------------------
* **Catalog** (:func:`make_catalog`): products in 46 categories grouped into 8 shopping
  intents ("sportswear/fitness": running shoes, sports shorts, fitness trackers, ...).
  Names are assembled from brand, product line and model parts of the intent, so they read
  like real products ("Swift Runner 3 Running Shoes"). Each category's items have a latent
  ``popularity_rank`` (1 = best seller) that drives a Zipf law of clicks.
* **Sessions** (:func:`generate_clicks`): a session opens on a category (chosen in
  proportion to the category's size) and then, click by click, either repeats the
  previous item, stays in the category for another
  item, or jumps. A jump is a Markov step over categories: mostly to a related category of
  the same intent (nearby categories in the taxonomy more likely), rarely to another
  intent; a minority of "multi-intent" sessions switch intent much more often. Lengths
  follow a mixture of two geometric laws (about half the sessions have one or two clicks,
  mean about four, long tail).
* **Intents** (:mod:`~sessionrec.data.synthetic.intents`): each session browses (views
  only), buys (a view -> cart -> purchase funnel in one category) or switches between the
  two; the intent is returned in ``session_intent`` so that tests know the answer.
* **Time and visitors**: clicks are tens of seconds to minutes apart (never more than 20
  minutes), sessions start anywhere in the period, and anonymous visitors (``user_id``)
  often come back for more sessions, always more than 30 minutes after their previous
  session ended. Cutting a visitor's clicks at 30 minutes of inactivity therefore recovers
  the true ``session_id`` exactly; callers may also use ``session_id`` directly.

Identifiers
-----------
``item_id`` is an ``Int64`` SKU number starting at :data:`FIRST_ITEM_ID` (1,000,000), in
catalog row order. Integers keep a 20M-click log compact and fast to index, and because
they are never equal to the internal indices ``0..n-1`` a model that confuses the two fails
loudly in tests. ``session_id`` and ``user_id`` are ``Int64`` numbered from 1 in order of
first appearance in time.

Reproducibility: everything is drawn from ``numpy.random.default_rng`` streams derived from
``seed``, so the same arguments give identical frames with the same numpy version.

Modules: ``categories`` (the intents and categories, as data), ``catalog``
(:func:`make_catalog`, :func:`demo_session`), ``intents`` (the planted session intents),
``laws`` (what the click model reads from a
catalog, and its fast sampler), ``clicks`` (:func:`generate_clicks`) and ``shop``
(:func:`generate_shop`: both from one seed).
"""

from sessionrec.data.synthetic.catalog import FIRST_ITEM_ID, demo_session, make_catalog
from sessionrec.data.synthetic.categories import DEMO_CATEGORIES, TAXONOMY
from sessionrec.data.synthetic.clicks import EVENT_TYPES, generate_clicks
from sessionrec.data.synthetic.intents import SESSION_INTENTS
from sessionrec.data.synthetic.shop import SyntheticShop, generate_shop

__all__ = [
    "DEMO_CATEGORIES",
    "EVENT_TYPES",
    "FIRST_ITEM_ID",
    "SESSION_INTENTS",
    "TAXONOMY",
    "SyntheticShop",
    "demo_session",
    "generate_clicks",
    "generate_shop",
    "make_catalog",
]
