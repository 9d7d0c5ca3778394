// The demo storefront: a click on a product is one event of an anonymous session, answered
// with the session's recommendations in the same round trip (POST /v1/sessions/{id}/events).
// "Add to cart" and "Buy the cart" send cart and purchase events (conversions the service
// attributes to the answer that showed the item); "Rank for a purchase" asks for the
// purchase objective (items this visitor will likely buy), which session-kNN models answer.
// Every catalog or service string reaches the page through textContent, never innerHTML,
// so a product name cannot inject markup.
"use strict";

(function () {
  const K = 10;
  const state = {
    sessionId: "",
    variant: "", // "" lets the service pick the A/B arm from the session id
    objective: "", // "" is the next click; "purchase" ranks what the visitor will buy
    trail: [], // {id, type}: the session's events in order
    cart: [], // items carted and not bought yet
    items: new Map(), // item_id -> {name, category}: names for the trail and the reasons
    updates: 0,
    busy: Promise.resolve(),
  };
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function newSessionId() {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return "demo-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
    status.setAttribute("role", isError ? "alert" : "status");
  }

  async function api(method, path, body) {
    const options = { method: method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    let payload = null;
    try {
      payload = await response.json();
    } catch (err) {
      payload = null;
    }
    if (!response.ok) {
      const message = payload && payload.message ? payload.message : response.statusText;
      const error = new Error(method + " " + path + ": " + response.status + " " + message);
      error.status = response.status;
      throw error;
    }
    return payload;
  }

  function query() {
    const params = new URLSearchParams({ k: String(K), details: "true", explain: "true" });
    if (state.variant) params.set("variant", state.variant);
    if (state.objective) params.set("objective", state.objective);
    return params.toString();
  }

  function sessionPath(suffix) {
    return "/v1/sessions/" + encodeURIComponent(state.sessionId) + suffix + "?" + query();
  }

  // ------------------------------------------------------------------ rendering
  function itemName(id) {
    const known = state.items.get(String(id));
    return known ? known.name : String(id);
  }

  function renderTrail() {
    const trail = $("trail");
    trail.replaceChildren();
    for (const step of state.trail) {
      const known = state.items.get(step.id) || { name: step.id, category: "" };
      const li = el("li", "step " + step.type);
      li.dataset.itemId = step.id;
      li.dataset.eventType = step.type;
      li.append(el("span", "name", known.name));
      if (known.category) li.append(el("span", "meta", " (" + known.category + ")"));
      if (step.type !== "view") li.append(el("span", "meta", step.type === "cart" ? " · added to cart" : " · bought"));
      trail.append(li);
    }
    $("trail-empty").hidden = state.trail.length > 0;
    $("session-id").textContent = state.sessionId;
    $("add-to-cart").disabled = !state.trail.length;
    $("checkout").disabled = !state.cart.length;
    $("cart-count").dataset.count = String(state.cart.length);
    $("cart-count").textContent = state.cart.length ? state.cart.length + " in the cart" : "";
    const viewed = new Set(state.trail.map((step) => step.id));
    for (const button of document.querySelectorAll("#products .product")) {
      button.classList.toggle("viewed", viewed.has(button.dataset.itemId));
    }
  }

  // "because you viewed X, Y": the session items that contributed most to the score.
  function reasonText(item) {
    const reason = item.reason;
    if (reason && Array.isArray(reason.session_items) && reason.session_items.length) {
      const top = reason.session_items
        .slice()
        .sort((a, b) => (Number(b.weight) || 0) - (Number(a.weight) || 0))
        .slice(0, 2)
        .map((s) => itemName(s.item_id));
      return "because you viewed " + top.join(", ");
    }
    if (reason && Array.isArray(reason.neighbour_sessions) && reason.neighbour_sessions.length) {
      return "shoppers in similar sessions viewed it";
    }
    if (item.source === "popular") return "popular in the shop";
    if (item.source === "category") return "popular in a category you viewed";
    return "";
  }

  function renderRecs(answer) {
    const recs = $("recs");
    recs.replaceChildren();
    const items = answer ? answer.items || [] : [];
    for (const item of items) {
      const attributes = item.attributes || {};
      const name = attributes.name || itemName(item.item_id);
      const category = item.category || (state.items.get(String(item.item_id)) || {}).category || "";
      if (!state.items.has(String(item.item_id))) {
        state.items.set(String(item.item_id), { name: String(name), category: String(category) });
      }
      const li = el("li", "rec");
      li.tabIndex = 0;
      li.dataset.itemId = String(item.item_id);
      li.dataset.category = String(category);
      li.dataset.source = String(item.source || "");
      li.append(el("span", "name", name));
      li.append(el("span", "score", Number(item.score).toFixed(3)));
      li.append(el("span", "meta", category + (item.available === false ? " · sold out" : "")));
      const why = reasonText(item);
      if (why) li.append(el("span", "why", why));
      const open = () => view(String(item.item_id), answer.recommendation_id);
      li.addEventListener("click", open);
      li.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          open();
        }
      });
      recs.append(li);
    }
    $("recs-empty").hidden = items.length > 0;
    $("served-by").textContent = answer
      ? "by " + answer.model + " (variant " + answer.variant + ")" + (answer.fallback ? ", with popular items" : "")
      : "";
    state.updates += 1;
    recs.dataset.updates = String(state.updates);
    recs.dataset.session = state.sessionId;
    recs.dataset.eventCount = String(answer && answer.event_count != null ? answer.event_count : 0);
  }

  function renderCatalog(catalog) {
    const products = $("products");
    const nav = $("category-nav");
    products.replaceChildren();
    nav.replaceChildren();
    let group = null;
    catalog.categories.forEach((category, index) => {
      const anchor = "category-" + index;
      const label = category.name || "other";
      if (category.group && category.group !== group) {
        group = category.group;
        products.append(el("h3", "group-title", group));
      }
      const link = el("a", "", label);
      link.href = "#" + anchor;
      nav.append(link);
      const section = el("section", "category");
      section.id = anchor;
      section.dataset.category = label;
      section.append(el("h3", "", label));
      const grid = el("ul", "grid");
      for (const item of category.items) {
        state.items.set(String(item.item_id), { name: item.name, category: label });
        const button = el("button", "product");
        button.type = "button";
        button.dataset.itemId = String(item.item_id);
        button.dataset.category = label;
        button.append(el("span", "name", item.name));
        const meta = el("span", "meta", typeof item.price === "number" ? item.price.toFixed(2) : "");
        if (!item.available) meta.append(el("span", "sold-out", " sold out"));
        button.append(meta);
        button.addEventListener("click", () => view(String(item.item_id)));
        const li = el("li");
        li.append(button);
        grid.append(li);
      }
      section.append(grid);
      products.append(section);
    });
  }

  // ------------------------------------------------------------------ actions
  // Events are sent one at a time, in order, so the trail matches the service's session.
  function send(itemId, type) {
    return api("POST", sessionPath("/events"), { item_id: itemId, event_type: type });
  }

  function view(itemId, recommendationId) {
    state.busy = state.busy.then(async () => {
      try {
        if (recommendationId) {
          // A click on a recommendation is feedback for the A/B counters; never blocking.
          api("POST", "/v1/feedback", { recommendation_id: recommendationId, item_id: itemId }).catch(() => {});
        }
        const answer = await send(itemId, "view");
        state.trail.push({ id: itemId, type: "view" });
        renderTrail();
        renderRecs(answer);
        setStatus("Viewed " + itemName(itemId) + ".", false);
        // On a phone the session panel sits above the products: bring the answer into view.
        if (window.matchMedia("(max-width: 899px)").matches) {
          $("session-title").scrollIntoView({ behavior: "smooth", block: "start" });
        }
      } catch (err) {
        setStatus(String(err.message || err), true);
      }
    });
    return state.busy;
  }

  function addToCart() {
    state.busy = state.busy.then(async () => {
      const last = [...state.trail].reverse().find((step) => step.type === "view");
      if (!last) return;
      try {
        const answer = await send(last.id, "cart");
        state.trail.push({ id: last.id, type: "cart" });
        if (!state.cart.includes(last.id)) state.cart.push(last.id);
        renderTrail();
        renderRecs(answer);
        setStatus("Added " + itemName(last.id) + " to the cart.", false);
      } catch (err) {
        setStatus(String(err.message || err), true);
      }
    });
    return state.busy;
  }

  function checkout() {
    state.busy = state.busy.then(async () => {
      try {
        let answer = null;
        const bought = state.cart.length;
        for (const id of state.cart.slice()) {
          answer = await send(id, "purchase");
          state.trail.push({ id: id, type: "purchase" });
          state.cart.splice(state.cart.indexOf(id), 1);
        }
        renderTrail();
        if (answer) renderRecs(answer);
        setStatus("Bought " + bought + (bought === 1 ? " product." : " products."), false);
      } catch (err) {
        renderTrail();
        setStatus(String(err.message || err), true);
      }
    });
    return state.busy;
  }

  function reset() {
    state.sessionId = newSessionId();
    state.trail = [];
    state.cart = [];
    renderTrail();
    renderRecs(null);
    setStatus("New anonymous session " + state.sessionId + ".", false);
  }

  function refresh(what) {
    if (!state.trail.length) return;
    state.busy = state.busy.then(async () => {
      try {
        renderRecs(await api("GET", sessionPath("/recommendations")));
        setStatus(what, false);
      } catch (err) {
        setStatus(String(err.message || err), true);
      }
    });
  }

  function changeVariant() {
    state.variant = $("variant").value;
    refresh("Recommendations from " + (state.variant || "the A/B split") + ".");
  }

  function changeObjective() {
    state.objective = $("objective").value;
    refresh(state.objective ? "Ranked for what you will likely buy." : "Ranked for your next click.");
  }

  async function start() {
    $("reset").addEventListener("click", reset);
    $("variant").addEventListener("change", changeVariant);
    $("objective").addEventListener("change", changeObjective);
    $("add-to-cart").addEventListener("click", addToCart);
    $("checkout").addEventListener("click", checkout);
    state.sessionId = newSessionId();
    renderTrail();
    try {
      const info = await api("GET", "/v1/info");
      for (const variant of info.variants || []) {
        const option = el("option", "", variant.name + " (" + variant.model + ", " + Math.round(100 * variant.share) + "% of traffic)");
        option.value = variant.name;
        $("variant").append(option);
      }
    } catch (err) {
      setStatus(String(err.message || err), true);
      return;
    }
    try {
      const catalog = await api("GET", "/demo/catalog.json?per_category=12");
      renderCatalog(catalog);
      setStatus(catalog.items + " products in " + catalog.categories.length + " categories. Click one.", false);
    } catch (err) {
      if (err.status === 404) {
        setStatus("This service has no catalog: start it with --catalog FILE to show products.", true);
      } else {
        setStatus(String(err.message || err), true);
      }
      return;
    }
    document.body.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", start);
})();
