// The report's behaviour, static and offline: the charts, the galleries' second view, and the
// review of the label-issue candidates.

// Charts: each page carries its Vega-Lite specs as JSON blocks (script.chart-spec, data-chart naming
// the div to draw in); the Vega bundle loads before this script.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("script.chart-spec").forEach((block) => {
    vegaEmbed("#" + block.dataset.chart, JSON.parse(block.textContent), {actions: false, renderer: "svg"});
  });
});

// Galleries with a second view (true positives: their mask, or their Guided Grad-CAM): a
// `.toggle-alt` checkbox swaps every thumbnail and its full-size link.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input.toggle-alt").forEach((box) => box.addEventListener("change", () => {
    document.querySelectorAll("img[data-alt-src]").forEach((img) => {
      const link = img.closest("a"), src = img.getAttribute("src"), href = link.getAttribute("href");
      img.setAttribute("src", img.dataset.altSrc);
      link.setAttribute("href", img.dataset.altHref);
      img.dataset.altSrc = src;
      img.dataset.altHref = href;
    });
  }));
});

// Review of the label-issue candidates on the Label issues page: one card per image, its candidates
// listed under it. Accept / Reject per candidate, kept in the browser's local storage (per dataset,
// so a rebuilt site finds the decisions of candidates it still lists), filters, overlays switched per
// card and page-wide, a large view, keyboard shortcuts and a "Download review" button that writes
// label_review.csv from the page itself. No server.
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("review-bar");
  if (!bar) return;
  const KEY = "cloud-assets-review:" + bar.dataset.dataset;
  const COLUMNS = ["image", "class", "decision", "new_class", "score", "kind", "reviewed_at", "labels_sha256"];
  const candidates = Array.from(document.querySelectorAll(".issues li.candidate"));
  const cards = Array.from(document.querySelectorAll(".issues figure.card"));
  const dialog = document.getElementById("large-view");
  // every decision stored, less those of a listed candidate whose image's labels have changed since (a
  // site rebuilt on a new train.csv): those stay stored, but are shown undecided and not downloaded
  // a browser that holds none for the dataset starts from the review last applied (corrected_labels')
  const APPLIED = (document.getElementById("review-applied") || {}).textContent || "{}";
  const stored = () => JSON.parse(localStorage.getItem(KEY) ?? APPLIED);
  const stale = (c, d) => !!d && !!d.labels_sha256 && d.labels_sha256 !== c.dataset.labels;
  const load = () => {
    const decisions = stored();
    candidates.forEach((c) => { if (stale(c, decisions[id(c)])) delete decisions[id(c)]; });
    return decisions;
  };
  const save = (decisions) => localStorage.setItem(KEY, JSON.stringify(decisions));
  const id = (c) => c.dataset.image + "|" + c.dataset.class;
  const cardOf = (c) => c.closest("figure.card");
  const visible = () => candidates.filter((c) => c.style.display !== "none" && cardOf(c).style.display !== "none");
  const option = (c) => { const s = c.querySelector("select.new-class"); return s ? s.value : ""; };
  let current = null;

  // what the card draws: the change of its candidate in focus (for the class its menu names), and
  // that candidate's overlays when switched on (loaded on first use)
  const draw = (card) => {
    const c = card.querySelector("li.candidate.current") || card.querySelector("li.candidate");
    const rank = c.dataset.rank, value = option(c);
    card.querySelectorAll("g.change").forEach((g) => g.classList.toggle("shown",
      g.dataset.candidate === rank && g.dataset.option === value));
    card.querySelectorAll("li.candidate").forEach((l) => l.querySelectorAll("span.after").forEach((s) => {
      s.hidden = s.dataset.option !== option(l);
    }));
    card.querySelectorAll("img.overlay").forEach((img) => {
      const on = img.dataset.candidate === rank && card.classList.contains(img.classList.contains("heat") ? "show-heat" : "show-cam");
      if (on && !img.getAttribute("src")) img.setAttribute("src", img.dataset.src);
      img.classList.toggle("shown", on);
    });
    if (dialog.open && cardOf(current) === card) enlarge();
  };

  const overlay = (card, name, on) => {
    card.classList.toggle(name, on);
    const box = card.querySelector("input." + name);
    if (box) box.checked = on;
    draw(card);
  };

  const show = () => {
    const decisions = load();
    let accepted = 0, rejected = 0;
    candidates.forEach((c) => {
      const d = decisions[id(c)];
      c.classList.toggle("accepted", !!d && d.decision === "accept");
      c.classList.toggle("rejected", !!d && d.decision === "reject");
      const select = c.querySelector("select.new-class");
      // a class the menu no longer offers (a decision of an older page's) leaves the menu as it is
      if (d && select && d.decision === "accept" && select.querySelector(`option[value="${CSS.escape(d.new_class)}"]`)) {
        select.value = d.new_class;
      }
      if (d) (d.decision === "accept" ? accepted++ : rejected++);
    });
    cards.forEach(draw);
    const left = candidates.length - accepted - rejected;
    document.getElementById("review-count").textContent =
      `${accepted + rejected} of ${candidates.length} reviewed (${accepted} accepted, ${rejected} rejected), ${left} left`;
  };

  // the large view: the card's image and overlays at the size the page allows, and the candidate's words
  const enlarge = () => {
    if (!current) return;
    const stage = cardOf(current).querySelector(".stage").cloneNode(true);
    stage.querySelector("img.plain").removeAttribute("loading");
    dialog.querySelector(".large-stage").replaceChildren(stage);
    const state = current.classList.contains("accepted") ? " (accepted)" : current.classList.contains("rejected") ? " (rejected)" : "";
    dialog.querySelector(".large-text").textContent = current.querySelector("span.why").textContent + " " +
      current.querySelector("span.after:not([hidden])").textContent + state;
    if (!dialog.open) dialog.showModal();
  };

  const focus = (c) => {
    const before = current;
    if (current) current.classList.remove("current");
    current = c;
    if (before) draw(cardOf(before));
    if (c) {
      c.classList.add("current");
      draw(cardOf(c));
      c.scrollIntoView({block: "nearest"});
    }
  };

  const step = (by) => {
    const list = visible();
    if (!list.length) return;
    const at = list.indexOf(current);
    focus(list[Math.min(Math.max(at + by, 0), list.length - 1)] || list[0]);
  };

  const nextOpen = () => {
    const decisions = load(), list = visible();
    const after = list.slice(list.indexOf(current) + 1).concat(list);
    focus(after.find((c) => !decisions[id(c)]) || current);
  };

  const decide = (c, decision) => {
    const decisions = stored();
    decisions[id(c)] = {image: c.dataset.image, class: c.dataset.class, decision,
                        new_class: decision === "accept" ? option(c) : "", score: c.dataset.score, kind: c.dataset.kind,
                        reviewed_at: new Date().toISOString(), labels_sha256: c.dataset.labels};
    save(decisions);
    show();
    focus(c);
    nextOpen();
  };

  candidates.forEach((c) => {
    c.querySelector("button.accept").addEventListener("click", () => decide(c, "accept"));
    c.querySelector("button.reject").addEventListener("click", () => decide(c, "reject"));
    c.addEventListener("click", (e) => { if (!e.target.closest("button, select, summary")) focus(c); });
    const select = c.querySelector("select.new-class");
    if (select) select.addEventListener("change", () => {
      const decisions = stored();
      const d = decisions[id(c)];
      if (d && !stale(c, d) && d.decision === "accept") { d.new_class = select.value; save(decisions); }
      focus(c);
    });
  });
  cards.forEach((card) => {
    ["show-heat", "show-cam"].forEach((name) => {
      const box = card.querySelector("input." + name);
      if (box) box.addEventListener("change", () => overlay(card, name, box.checked));
    });
    const open = () => { if (cardOf(current) !== card) focus(card.querySelector("li.candidate")); enlarge(); };
    card.querySelector("button.enlarge").addEventListener("click", open);
    card.querySelector(".stage").addEventListener("click", open);
  });
  const everywhere = (name, on) => {
    document.getElementById(name === "show-heat" ? "all-heat" : "all-cam").checked = on;
    cards.forEach((card) => overlay(card, name, on));
  };
  document.getElementById("all-heat").addEventListener("change", (e) => everywhere("show-heat", e.target.checked));
  document.getElementById("all-cam").addEventListener("change", (e) => everywhere("show-cam", e.target.checked));

  const quote = (v) => /[",\n]/.test(String(v)) ? '"' + String(v).replace(/"/g, '""') + '"' : String(v);
  document.getElementById("review-download").addEventListener("click", () => {
    const rows = Object.values(load()).sort((a, b) => a.reviewed_at.localeCompare(b.reviewed_at));
    const text = [COLUMNS.join(",")].concat(rows.map((r) => COLUMNS.map((c) => quote(r[c] ?? "")).join(","))).join("\n") + "\n";
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
    link.download = "label_review.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
  });
  document.getElementById("review-clear").addEventListener("click", () => {
    if (confirm("Forget every decision made on this dataset in this browser?")) { save({}); show(); }
  });

  // caught before the theme's own keys (its n and p turn the page), which then never see them
  window.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    // Enter presses the review bar's buttons, links and summaries in focus; on a candidate's Accept or Reject,
    // left in focus by a click while the review moved on, it opens the large view as everywhere else
    if (e.key === "Enter" && e.target.closest(".review-bar button, a, summary")) return;
    const toggle = (name) => current && everywhere(name, !cardOf(current).classList.contains(name));
    const keys = {a: () => current && decide(current, "accept"), r: () => current && decide(current, "reject"),
                  n: () => step(1), j: () => step(1), p: () => step(-1), k: () => step(-1),
                  h: () => toggle("show-heat"), g: () => toggle("show-cam"), Enter: enlarge};
    if (keys[e.key]) { e.preventDefault(); e.stopPropagation(); keys[e.key](); }
  }, true);
  const FILTERS = {"f-class": "class", "f-kind": "kind", "f-split": "split"};  // select -> data attribute
  Object.keys(FILTERS).forEach((name) => document.getElementById(name).addEventListener("change", () => {
    const chosen = Object.entries(FILTERS).map(([n, a]) => [a, document.getElementById(n).value]);
    candidates.forEach((c) => {
      c.style.display = chosen.every(([a, v]) => !v || c.dataset[a] === v) ? "" : "none";
    });
    cards.forEach((card) => {
      card.style.display = Array.from(card.querySelectorAll("li.candidate")).some((c) => c.style.display !== "none") ? "" : "none";
    });
    focus(visible()[0] || null);
  }));

  show();
  const decided = load();
  focus(candidates.find((c) => !decided[id(c)]) || candidates[0] || null);
});
