(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let data = {};
  try {
    data = JSON.parse($("gallery-data").textContent || "{}");
  } catch (err) {
    console.error("dreamlab gallery: unreadable unit data", err);
  }
  const units = Array.isArray(data.units) ? data.units : [];
  const tiles = Array.from(document.querySelectorAll(".unit[data-idx]"));
  const tileByIdx = new Map(tiles.map((t) => [Number(t.dataset.idx), t]));
  const order = new Map(tiles.map((t, p) => [Number(t.dataset.idx), p]));
  const keys = new Map(), keysLower = new Map(), sections = new Map();
  const addKey = (k, i) => {
    if (typeof k !== "string" || !k) return;
    if (!keys.has(k)) keys.set(k, i);
    if (!keysLower.has(k.toLowerCase())) keysLower.set(k.toLowerCase(), i);
  };
  for (const t of tiles) addKey(t.dataset.key, Number(t.dataset.idx));
  units.forEach((u, i) => { if (u && tileByIdx.has(i)) addKey(u.unit, i); });
  for (const s of document.querySelectorAll("section.layer")) {
    const name = s.dataset.layer;
    if (!sections.has(name)) sections.set(name, s);
    if (!sections.has(name.toLowerCase())) sections.set(name.toLowerCase(), s);
  }

  // each layer's channel count (manifest "layers"), and the layer whose output is the model's (what logit:N reads)
  const layerList = Array.isArray(data.layers) ? data.layers.filter((l) => l && typeof l.name === "string") : [];
  const channelCount = new Map(layerList.filter((l) => Number.isInteger(l.channels)).map((l) => [l.name, l.channels]));
  const outputLayer = layerList.find((l) => l.output === true && sections.has(l.name));

  const form = $("jump"), input = $("jump-input"), msg = $("jump-msg");
  const viewer = $("viewer"), vTitle = $("viewer-title"), vImg = $("viewer-img"), vMeta = $("viewer-meta");
  const vFile = $("viewer-file"), vLink = $("viewer-link"), vPrev = $("viewer-prev"), vNext = $("viewer-next");
  const vStrip = $("viewer-strip"), vExamples = $("viewer-examples"), vExamplesImg = $("viewer-examples-img");
  let current = -1, hit = null, stripButtons = [];

  function lookup(q) {
    if (keys.has(q)) return keys.get(q);
    const c = q.lastIndexOf(":");
    if (c > 0) {
      const ch = q.slice(c + 1).trim();
      if (/^[0-9]+$/.test(ch)) {  // tolerate "a : 007"
        const k = q.slice(0, c).trim() + ":" + String(parseInt(ch, 10));
        if (keys.has(k)) return keys.get(k);
        if (keysLower.has(k.toLowerCase())) return keysLower.get(k.toLowerCase());
      }
    }
    return keysLower.has(q.toLowerCase()) ? keysLower.get(q.toLowerCase()) : -1;
  }

  function sectionOf(t) {
    const s = t.closest("section.layer");
    return s ? s.dataset.layer : "";
  }

  function markHit(t) {
    if (hit) hit.classList.remove("hit");
    hit = t;
    void t.offsetWidth;  // restart the pulse animation when the same tile is hit again
    t.classList.add("hit");
  }

  function reveal(i) {
    const t = tileByIdx.get(i);
    if (!t) return;
    markHit(t);
    t.scrollIntoView({ block: "center", inline: "nearest" });
  }

  function fmt(v) {
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
    if (typeof v === "string") return v;
    if (Array.isArray(v) && v.every((x) => typeof x === "number" || typeof x === "string")) {
      return v.map(fmt).join(", ");  // --diversity: a unit's files and activations
    }
    return JSON.stringify(v);
  }

  // a relative file path of the manifest as a URL path (as the page's Python side writes the tiles' src)
  const urlPath = (file) => String(file).split("/").map(encodeURIComponent).join("/");

  function show(src) {
    vImg.setAttribute("src", src);
    vFile.setAttribute("href", src);
  }

  // --diversity N: a unit's N images. The side panel's file and activation are those of the image shown
  // (record.file and record.activation are image 1's), and a row says which image that is.
  function fillMeta(u, k) {
    const shown = Object.assign({}, u && typeof u === "object" ? u : {});
    const files = Array.isArray(shown.files) ? shown.files.filter((f) => typeof f === "string") : [];
    if (files.length > 1) {  // as fillStrip numbers them
      shown.file = files[k];
      if (Array.isArray(shown.activations)) shown.activation = shown.activations[k];
      const entries = Object.entries(shown);
      const at = entries.findIndex(([key]) => key === "file");
      entries.splice(at < 0 ? entries.length : at, 0, ["image", (k + 1) + " of " + files.length]);
      return fillRows(entries);
    }
    fillRows(Object.entries(shown));
  }

  function fillRows(entries) {
    const rows = [];
    for (const [k, v] of entries) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = fmt(v);
      dd.dataset.key = k;
      if (typeof v === "number" && dd.textContent !== String(v)) dd.setAttribute("title", String(v));
      rows.push(dt, dd);
    }
    vMeta.replaceChildren(...rows);
  }

  function fillStrip(u) {  // a unit rendered with --diversity N: its N images, the first shown and marked
    const files = u && Array.isArray(u.files) ? u.files.filter((f) => typeof f === "string") : [];
    vStrip.hidden = files.length < 2;
    stripButtons = [];
    if (vStrip.hidden) { vStrip.replaceChildren(); return; }
    const buttons = files.map((f, k) => {
      const b = document.createElement("button");
      b.type = "button";
      b.title = "image " + (k + 1) + " of " + files.length + " (\u2191 \u2193)";
      b.setAttribute("aria-pressed", String(k === 0));
      const img = document.createElement("img");
      img.src = urlPath(f);
      img.alt = "image " + (k + 1) + " of " + files.length;
      b.append(img);
      b.addEventListener("click", () => {
        for (const o of buttons) o.setAttribute("aria-pressed", String(o === b));
        show(img.getAttribute("src"));
        fillMeta(u, k);
      });
      return b;
    });
    vStrip.replaceChildren(...buttons);
    stripButtons = buttons;
  }

  function stepImage(d) {  // ↑ / ↓ in the large view: the unit's previous / next --diversity image
    const at = stripButtons.findIndex((b) => b.getAttribute("aria-pressed") === "true");
    const next = stripButtons[at + d];
    if (next) next.click();
  }

  // the address names the unit on view (index.html#unit=<key>), so that it can be copied; no history entries
  const unitHash = (t) => "#unit=" + encodeURIComponent((t && t.dataset.key) || "");

  function setHash(hash) {
    if (location.hash === hash || (!hash && !location.hash)) return;
    try {
      history.replaceState(history.state, "", location.href.split("#")[0] + hash);
    } catch (err) { /* a browser that refuses it for file:// pages keeps the old address */ }
  }

  function openUnit(i) {
    const t = tileByIdx.get(i);
    if (!t) return;
    current = i;
    const key = t.dataset.key || "";
    const img = t.querySelector("img");
    const src = img ? img.getAttribute("src") : null;
    vTitle.textContent = key;
    vImg.setAttribute("alt", key);
    if (src) {
      show(src);
    } else {
      vImg.removeAttribute("src");
      vFile.removeAttribute("href");
    }
    vImg.hidden = !src;
    vFile.hidden = !src;
    vLink.setAttribute("href", "#unit=" + encodeURIComponent(key));
    setHash(unitHash(t));
    const u = units[i];
    fillMeta(u, 0);
    fillStrip(u);
    const examples = u && typeof u.examples === "string" ? u.examples : null;  // gallery --examples
    vExamples.hidden = !examples;
    if (examples) {
      vExamplesImg.setAttribute("src", urlPath(examples));
      vExamplesImg.setAttribute("alt", "dataset examples of " + key);
    } else {
      vExamplesImg.removeAttribute("src");
    }
    const p = order.get(i);
    vPrev.disabled = !(p > 0);
    vNext.disabled = !(p < tiles.length - 1);
    if (!viewer.open) viewer.showModal();
  }

  function step(d) {
    const p = order.get(current);
    if (p === undefined || !tiles[p + d]) return;
    const i = Number(tiles[p + d].dataset.idx);
    reveal(i);
    openUnit(i);
  }

  function setMsg(text) { msg.textContent = text; }

  function ranges(nums) {  // [0, 1, 2, 5] -> "0-2, 5"
    const parts = [];
    for (let k = 0; k < nums.length; k++) {
      let j = k;
      while (j + 1 < nums.length && nums[j + 1] === nums[j] + 1) j++;
      parts.push(j === k ? String(nums[k]) : nums[k] + "-" + nums[j]);
      k = j;
    }
    return parts.join(", ");
  }

  function shownChannels(s) {  // the channel numbers of a section's tiles, ascending
    const chans = new Set();
    for (const t of s.querySelectorAll(".unit[data-idx]")) {
      const u = units[Number(t.dataset.idx)];
      const key = t.dataset.key || "";
      const ch = u && Number.isInteger(u.channel) ? u.channel : parseInt(key.slice(key.lastIndexOf(":") + 1), 10);
      if (Number.isInteger(ch)) chans.add(ch);
    }
    return Array.from(chans).sort((a, b) => a - b);
  }

  // what to say for "layer:text" where the layer is in the gallery but that unit is not
  function noUnit(s, text) {
    const name = s.dataset.layer, shown = shownChannels(s), count = channelCount.get(name);
    let has;
    if (count === undefined) {
      has = "this gallery shows its channels " + ranges(shown);
    } else {
      has = "its channels are " + (count > 1 ? "0-" + (count - 1) : "0");
      if (shown.length !== count) has += ", and this gallery shows " + (shown.length ? ranges(shown) : "none");
    }
    if (!/^[0-9]+$/.test(text)) {
      const example = name + ":" + (shown.length ? shown[0] : 0);
      return "Layer " + name + " has no unit \u201c" + text + "\u201d: type a channel number, e.g. " + example +
        "; " + has + ".";
    }
    const n = parseInt(text, 10);
    const where = count !== undefined && n < count ? " in this gallery" : "";
    return "Layer " + name + " has no unit " + n + where + ": " + has + ".";
  }

  function jump(raw) {
    let q = raw.trim();
    setMsg("");
    if (!q) return;
    // logit:N, the objective grammar's name for the model's output: the gallery layer that gives it, if any
    const logit = /^logit\s*(?::(.*))?$/i.exec(q);
    if (logit && !sections.has(q.toLowerCase()) && !sections.has("logit")) {
      if (!outputLayer) {
        const example = tiles.length ? tiles[0].dataset.key : "layer:channel";
        setMsg("\u201c" + q + "\u201d names the model's output, which no layer of this gallery gives (its layers: " +
          Array.from(new Set(tiles.map((t) => sectionOf(t)))).join(", ") + "); type layer:channel, e.g. " +
          example + ".");
        return;
      }
      q = outputLayer.name + (logit[1] !== undefined ? ":" + logit[1] : "");
    }
    const i = lookup(q);
    if (i >= 0) {
      reveal(i);
      openUnit(i);
      return;
    }
    const s = sections.get(q) || sections.get(q.toLowerCase());
    if (s) {
      s.scrollIntoView({ block: "start" });
      return;
    }
    const c = q.lastIndexOf(":");
    const layer = c > 0 ? q.slice(0, c).trim() : "";
    const ls = layer ? sections.get(layer) || sections.get(layer.toLowerCase()) : null;
    if (ls) {
      const text = q.slice(c + 1).trim();
      if (!text) {  // "conv2:": the layer itself
        ls.scrollIntoView({ block: "start" });
        return;
      }
      setMsg(noUnit(ls, text));
    } else {
      const example = tiles.length ? tiles[0].dataset.key : "layer:channel";
      setMsg("No unit \u201c" + q + "\u201d in this gallery. Type layer:channel, e.g. " + example + ".");
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); jump(input.value); });
  input.addEventListener("input", () => setMsg(""));
  document.addEventListener("click", (e) => {
    const t = e.target instanceof Element ? e.target.closest(".unit[data-idx]") : null;
    if (!t || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();  // a plain click opens the large view; modified clicks keep the link behaviour
    markHit(t);
    openUnit(Number(t.dataset.idx));
  });
  $("viewer-close").addEventListener("click", () => viewer.close());
  viewer.addEventListener("close", () => {  // (unless the address was changed meanwhile: a permalink followed)
    if (current >= 0 && location.hash === unitHash(tileByIdx.get(current))) setHash("");
  });
  vPrev.addEventListener("click", () => step(-1));
  vNext.addEventListener("click", () => step(1));
  viewer.addEventListener("click", (e) => { if (e.target === viewer) viewer.close(); });  // the backdrop
  viewer.addEventListener("keydown", (e) => {
    if (e.key === "ArrowLeft") { step(-1); e.preventDefault(); }
    if (e.key === "ArrowRight") { step(1); e.preventDefault(); }
    if ((e.key === "ArrowDown" || e.key === "ArrowUp") && stripButtons.length > 1) {
      stepImage(e.key === "ArrowDown" ? 1 : -1);
      e.preventDefault();
    }
  });
  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof Element && e.target.closest("input, textarea, select");
    if (e.key === "/" && !typing && !viewer.open && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      input.focus({ preventScroll: true });  // the box is in the sticky header: the page keeps its place
      input.select();
    }
  });

  function fromHash() {  // index.html#unit=<layer:channel> opens that unit
    if (!location.hash.startsWith("#unit=")) return;
    let q;
    try { q = decodeURIComponent(location.hash.slice(6)); } catch (err) { return; }
    input.value = q;
    jump(q);
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
