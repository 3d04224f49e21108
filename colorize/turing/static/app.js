// The study page: one pair at a time, timed view, practice with feedback, then the test without.
// No external assets and no framework: every request goes to the server that served this page.
"use strict";

(function () {
  const PAUSE_MS = 250;            // blank gap between test pairs, so one pair never blends into the next
  const STORE_KEY = "colorize-turing:";
  const $ = (id) => document.getElementById(id);

  let study = null;                // /api/study
  let state = null;                // /api/participants/<id>: position, total, next trial
  let shownAt = 0;                 // performance.now() when the current pair appeared
  let hideTimer = 0;
  let busy = false;                // an answer is on its way: ignore further keys and clicks
  let onEnter = null;              // what Enter / Space does in the current view

  // ------------------------------------------------------------------------------------ helpers
  function show(view) {
    for (const el of document.querySelectorAll(".view")) el.classList.add("hidden");
    $("view-" + view).classList.remove("hidden");
    document.body.dataset.view = view;
  }

  async function api(method, path, body) {
    const opts = { method, headers: {}, cache: "no-store" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.error) || ("HTTP " + res.status));
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function fail(err) {
    busy = false;
    $("error-text").textContent = "Something went wrong: " + err.message +
      ". Your earlier answers are saved; try again.";
    onEnter = () => location.reload();
    show("error");
  }

  function storeKey() { return STORE_KEY + study.study_id; }

  function rememberParticipant(pid) {
    try { localStorage.setItem(storeKey(), pid); } catch (e) { /* private mode: the URL still holds it */ }
    const url = new URL(location.href);
    url.searchParams.set("p", pid);
    history.replaceState(null, "", url.pathname + url.search);
  }

  function forgetParticipant() {
    try { localStorage.removeItem(storeKey()); } catch (e) { /* ignore */ }
    history.replaceState(null, "", location.pathname);
  }

  function knownParticipant() {
    const fromUrl = new URL(location.href).searchParams.get("p");
    if (fromUrl && /^[0-9a-f]{12}$/.test(fromUrl)) return fromUrl;
    try { return localStorage.getItem(storeKey()); } catch (e) { return null; }
  }

  function setProgress() {
    const t = state && state.trial;
    const box = $("progress-box");
    if (!state) { box.classList.add("hidden"); return; }
    box.classList.remove("hidden");
    const bar = $("progress");
    if (!t) {
      $("progress-text").textContent = "Done";
      bar.max = 1; bar.value = 1;
      return;
    }
    const label = t.phase === "practice" ? "Practice " : "Pair ";
    $("progress-text").textContent = label + t.number + " of " + t.of;
    bar.max = t.of; bar.value = t.number - 1;
    document.body.dataset.phase = t.phase;
    document.body.dataset.position = String(state.position);
  }

  // ------------------------------------------------------------------------------------ flow
  function route() {
    setProgress();
    if (state.done) { onEnter = null; show("done"); return; }
    const t = state.trial;
    if (t.phase === "test" && t.number === 1 && state.practice_total > 0) {
      onEnter = () => showTrial();
      show("test-intro");
      return;
    }
    showTrial();
  }

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(src);
      img.onerror = () => reject(new Error("could not load " + src));
      img.src = src;
    });
  }

  async function showTrial() {
    const t = state.trial;
    onEnter = null;
    busy = true;
    document.body.dataset.ready = "0";
    $("feedback").classList.add("hidden");
    $("answer-buttons").classList.remove("hidden");
    for (const side of ["left", "right"]) {
      $("fig-" + side).classList.remove("is-real", "is-colorized", "covered");
      $("fig-" + side).classList.add("waiting");
      $("cap-" + side).textContent = "";
    }
    show("trial");
    try {
      // Both photos are fully loaded before either appears, so the view time is the same for both.
      await Promise.all(t.images.map(loadImage));
      if (t.phase === "test") await new Promise((r) => setTimeout(r, PAUSE_MS));
    } catch (err) { fail(err); return; }
    $("img-left").src = t.images[0];
    $("img-right").src = t.images[1];
    for (const side of ["left", "right"]) $("fig-" + side).classList.remove("waiting");
    shownAt = performance.now();
    clearTimeout(hideTimer);
    if (study.view_ms > 0) {
      hideTimer = setTimeout(() => {
        for (const side of ["left", "right"]) $("fig-" + side).classList.add("covered");
      }, study.view_ms);
    }
    $("choose-left").disabled = false;
    $("choose-right").disabled = false;
    busy = false;
    document.body.dataset.trial = t.id;
    document.body.dataset.ready = "1";
  }

  async function answer(choice) {
    if (busy || document.body.dataset.view !== "trial" || document.body.dataset.ready !== "1") return;
    busy = true;
    const rt = performance.now() - shownAt;
    clearTimeout(hideTimer);
    document.body.dataset.ready = "0";
    $("choose-left").disabled = true;
    $("choose-right").disabled = true;
    const t = state.trial;
    let res;
    try {
      res = await api("POST", "/api/answer", {
        participant: state.participant, position: state.position, trial: t.id, choice,
        rt_ms: Math.round(rt * 10) / 10,
      });
    } catch (err) { fail(err); return; }
    state = res.state;
    busy = false;
    if (res.feedback) { showFeedback(choice, res.feedback); return; }
    route();
  }

  function showFeedback(choice, fb) {
    const fake = fb.real_side === "left" ? "right" : "left";
    $("fig-" + fb.real_side).classList.add("is-real");
    $("fig-" + fake).classList.add("is-colorized");
    for (const side of ["left", "right"]) $("fig-" + side).classList.remove("covered");
    $("cap-" + fb.real_side).textContent = "real";
    $("cap-" + fake).textContent = "colorized";
    $("feedback-text").textContent = (fb.correct ? "Correct! " : "Not this time. ") +
      "The real photo was on the " + fb.real_side + ".";
    $("feedback").classList.remove("hidden");
    $("answer-buttons").classList.add("hidden");
    document.body.dataset.feedback = fb.correct ? "correct" : "wrong";
    onEnter = () => { document.body.dataset.feedback = ""; route(); };
  }

  async function start() {
    onEnter = null;
    try {
      state = await api("POST", "/api/participants", { label: $("label").value });
    } catch (err) { fail(err); return; }
    rememberParticipant(state.participant);
    route();
  }

  async function resumeOrWelcome() {
    const pid = knownParticipant();
    if (pid) {
      try {
        state = await api("GET", "/api/participants/" + pid);
      } catch (err) {
        if (err.status !== 404) { fail(err); return; }
        forgetParticipant();   // a participant of another study: start fresh
        state = null;
      }
    }
    if (!state) {
      const timing = study.view_ms > 0
        ? "Each pair is shown for " + (study.view_ms / 1000) + " s, then hidden; answer when you are ready."
        : "Look at each pair as long as you like.";
      $("welcome-timing").textContent = "There are " + study.pairs + " pairs (after " + study.practice +
        " practice pairs). " + timing;
      onEnter = start;
      show("welcome");
      return;
    }
    rememberParticipant(state.participant);
    setProgress();
    if (state.done) { show("done"); return; }
    if (state.position === 0) { route(); return; }
    const t = state.trial;
    $("resume-text").textContent = "Welcome back. You continue with " +
      (t.phase === "practice" ? "practice pair " : "pair ") + t.number + " of " + t.of + ".";
    onEnter = route;
    show("resume");
  }

  // ------------------------------------------------------------------------------------ results view
  function pct(x) { return (100 * x).toFixed(1) + "%"; }
  function rateText(r) {
    if (!r || !r.n) return "no answers";
    return pct(r.rate) + "  [" + pct(r.ci95[0]) + ", " + pct(r.ci95[1]) + "]  (" + r.fooled + "/" + r.n + ")";
  }
  function table(headers, rows) {
    const tbl = document.createElement("table");
    const head = tbl.createTHead().insertRow();
    for (const h of headers) { const th = document.createElement("th"); th.textContent = h; head.appendChild(th); }
    const body = tbl.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const cell of row) tr.insertCell().textContent = cell;
    }
    return tbl;
  }
  function heading(text) { const h = document.createElement("h2"); h.textContent = text; return h; }

  async function showResults() {
    show("results");
    $("progress-box").classList.add("hidden");
    let r;
    // The experimenter's page is /results/<token>; the same token opens the tally API.
    const token = location.pathname.slice("/results/".length);
    try { r = await api("GET", "/api/results/" + encodeURIComponent(token)); } catch (err) { fail(err); return; }
    const box = $("results-body");
    box.replaceChildren();
    const ms = (v) => (v === null || v === undefined ? "–" : Math.round(v) + " ms");
    box.appendChild(table(["", "fooled rate [95% CI] (fooled/answers)"], [
      ["all participants", rateText(r.overall)],
      ["without flagged participants", rateText(r.overall_unflagged)],
    ]));
    box.querySelector("table").id = "results-overall";
    if (Object.keys(r.by_condition).length > 1) {
      box.appendChild(heading("By condition"));
      const labels = {};
      for (const c of r.study.conditions) labels[c.name] = c.name + ": " + c.model + " T=" + c.temperature;
      box.appendChild(table(["condition", "fooled rate"],
        Object.entries(r.by_condition).map(([k, v]) => [labels[k] || k, rateText(v)])));
      if (r.condition_difference) {
        const d = r.condition_difference;
        const p = document.createElement("p");
        p.textContent = d.a + " − " + d.b + ": " + pct(d.diff) + " [" + pct(d.ci95[0]) + ", " + pct(d.ci95[1]) + "]";
        box.appendChild(p);
      }
    }
    box.appendChild(heading("By category"));
    const cat = table(["category", "fooled rate"], Object.entries(r.by_category).map(([k, v]) => [k, rateText(v)]));
    cat.id = "results-categories";
    box.appendChild(cat);
    box.appendChild(heading("Time per answer"));
    const t = r.time_per_answer;
    box.appendChild(table(["median", "mean", "10th pct", "90th pct"],
      [[ms(t.median_ms), ms(t.mean_ms), ms(t.p10_ms), ms(t.p90_ms)]]));
    box.appendChild(heading("Participants"));
    const parts = table(["participant", "answers", "fooled rate", "median time", "fast answers", "flags"],
      r.participants.map((p) => [p.participant, String(p.n) + (p.complete ? "" : " (unfinished)"),
        rateText(p), ms(p.time.median_ms), String(p.fast_answers), p.flags.join(", ") || "–"]));
    parts.id = "results-participants";
    box.appendChild(parts);
    document.body.dataset.results = "1";
  }

  // ------------------------------------------------------------------------------------ wiring
  document.addEventListener("keydown", (ev) => {
    if (ev.target && ev.target.tagName === "INPUT" && ev.key !== "Enter") return;
    if (ev.repeat) return;
    const k = ev.key;
    if (document.body.dataset.view === "trial" && $("feedback").classList.contains("hidden")) {
      if (k === "ArrowLeft" || k === "f" || k === "F") { ev.preventDefault(); answer("left"); }
      else if (k === "ArrowRight" || k === "j" || k === "J") { ev.preventDefault(); answer("right"); }
      return;
    }
    if ((k === "Enter" || k === " ") && onEnter) {
      ev.preventDefault();
      const fn = onEnter;
      onEnter = null;
      fn();
    }
  });
  const click = (id, fn) => $(id).addEventListener("click", () => fn());
  click("choose-left", () => answer("left"));
  click("choose-right", () => answer("right"));
  click("start", start);
  click("resume", () => { onEnter = null; route(); });
  click("begin-test", () => { onEnter = null; showTrial(); });
  click("next", () => { onEnter = null; document.body.dataset.feedback = ""; route(); });
  click("retry", () => location.reload());
  click("refresh", showResults);

  async function boot() {
    try { study = await api("GET", "/api/study"); } catch (err) { fail(err); return; }
    $("title").textContent = study.title;
    if (location.pathname.startsWith("/results/")) { showResults(); return; }
    resumeOrWelcome();
  }
  boot();
})();
