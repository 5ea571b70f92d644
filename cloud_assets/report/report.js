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

// Review of the label-issue candidates on the Label issues page: Accept / Reject per candidate, kept
// in the browser's local storage (per dataset, so a rebuilt site finds the decisions of candidates it
// still lists), filters, keyboard shortcuts and a "Download review" button that writes
// label_review.csv from the page itself. No server.
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("review-bar");
  if (!bar) return;
  const KEY = "cloud-assets-review:" + bar.dataset.dataset;
  const COLUMNS = ["image", "class", "decision", "new_class", "score", "kind", "reviewed_at"];
  const figures = Array.from(document.querySelectorAll(".issues figure"));
  const load = () => JSON.parse(localStorage.getItem(KEY) || "{}");
  const save = (decisions) => localStorage.setItem(KEY, JSON.stringify(decisions));
  const id = (f) => f.dataset.image + "|" + f.dataset.class;
  const visible = () => figures.filter((f) => f.style.display !== "none");
  let current = null;

  const show = () => {
    const decisions = load();
    let accepted = 0, rejected = 0;
    figures.forEach((f) => {
      const d = decisions[id(f)];
      f.classList.toggle("accepted", !!d && d.decision === "accept");
      f.classList.toggle("rejected", !!d && d.decision === "reject");
      const select = f.querySelector("select.new-class");
      if (d && select && d.decision === "accept") select.value = d.new_class;
      if (d) (d.decision === "accept" ? accepted++ : rejected++);
    });
    const left = figures.length - accepted - rejected;
    document.getElementById("review-count").textContent =
      `${accepted + rejected} of ${figures.length} reviewed (${accepted} accepted, ${rejected} rejected), ${left} left`;
  };

  const focus = (f) => {
    if (current) current.classList.remove("current");
    current = f;
    if (f) {
      f.classList.add("current");
      f.scrollIntoView({block: "nearest"});
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
    focus(after.find((f) => !decisions[id(f)]) || current);
  };

  const decide = (f, decision) => {
    const decisions = load();
    const select = f.querySelector("select.new-class");
    decisions[id(f)] = {image: f.dataset.image, class: f.dataset.class, decision,
                        new_class: select && decision === "accept" ? select.value : "", score: f.dataset.score, kind: f.dataset.kind,
                        reviewed_at: new Date().toISOString()};
    save(decisions);
    show();
    focus(f);
    nextOpen();
  };

  figures.forEach((f) => {
    f.querySelector("button.accept").addEventListener("click", () => decide(f, "accept"));
    f.querySelector("button.reject").addEventListener("click", () => decide(f, "reject"));
    f.addEventListener("click", (e) => { if (!e.target.closest("a")) focus(f); });
    const select = f.querySelector("select.new-class");
    if (select) select.addEventListener("change", () => {
      const decisions = load();
      const d = decisions[id(f)];
      if (d && d.decision === "accept") { d.new_class = select.value; save(decisions); }
    });
  });

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

  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = {a: () => current && decide(current, "accept"), r: () => current && decide(current, "reject"),
                  n: () => step(1), j: () => step(1), p: () => step(-1), k: () => step(-1)};
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });
  const FILTERS = {"f-class": "class", "f-kind": "kind", "f-split": "split"};  // select -> data attribute
  Object.keys(FILTERS).forEach((name) => document.getElementById(name).addEventListener("change", () => {
    const chosen = Object.entries(FILTERS).map(([n, a]) => [a, document.getElementById(n).value]);
    figures.forEach((f) => {
      f.style.display = chosen.every(([a, v]) => !v || f.dataset[a] === v) ? "" : "none";
    });
    focus(visible()[0] || null);
  }));

  show();
  const decided = load();
  focus(figures.find((f) => !decided[id(f)]) || figures[0] || null);
});
