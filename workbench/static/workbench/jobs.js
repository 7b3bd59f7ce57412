// Live job progress: polls the JSON endpoints while something runs (pretix style).
(function () {
  "use strict";
  const script = document.currentScript;
  const activeUrl = script && script.dataset.activeUrl;
  const fmtEta = (s) => (s === null || s === undefined) ? "–" :
    (s >= 3600 ? Math.floor(s / 3600) + " h " : "") + Math.floor((s % 3600) / 60) + " min " + Math.round(s % 60) + " s";
  const labels = {queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed", cancelled: "Cancelled"};

  function paint(root, job) {
    const set = (field, fn) => root.querySelectorAll('[data-field="' + field + '"]').forEach(fn);
    set("state", (el) => { el.textContent = labels[job.state] || job.state; el.className = "state " + job.state; });
    set("progress", (el) => { el.value = job.progress; });
    set("percent", (el) => { el.textContent = Math.round(job.progress * 100) + "%"; });
    set("message", (el) => { el.textContent = job.message; });
    set("eta", (el) => { el.textContent = fmtEta(job.eta_seconds); });
    set("finished", (el) => { if (job.finished_at) el.textContent = job.finished_at.replace("T", " ").slice(0, 19); });
    set("log", (el) => { if (job.log_tail) el.textContent = job.log_tail; });
    set("error", (el) => { el.textContent = job.error; el.hidden = !job.error; });
    root.dataset.state = job.state;
    const problems = document.getElementById("problems");
    if (problems && job.result && job.result.problems && job.result.problems.length) {
      const list = problems.querySelector("ul");
      list.replaceChildren(...job.result.problems.map((p) => { const li = document.createElement("li"); li.textContent = p; return li; }));
      problems.hidden = false;
    }
    const nextStep = root.querySelector("#next-step");
    if (nextStep && job.next_job) {
      const link = nextStep.querySelector("a");
      link.href = job.next_job.url;
      link.textContent = "job #" + job.next_job.id + " (" + job.next_job.kind + ")";
      nextStep.hidden = false;
    }
    const cancel = document.getElementById("cancel-form");
    if (cancel && !(job.state === "queued" || job.state === "running")) cancel.hidden = true;
  }

  const detail = document.getElementById("job");
  if (detail) {
    const poll = async () => {
      const response = await fetch(detail.dataset.jsonUrl, {headers: {Accept: "application/json"}});
      if (!response.ok) return;
      const job = await response.json();
      paint(detail, job);
      if (job.state === "queued" || job.state === "running") setTimeout(poll, 700);
    };
    if (detail.dataset.state === "queued" || detail.dataset.state === "running") setTimeout(poll, 300);
  }

  if (activeUrl) {
    const badge = document.getElementById("active-jobs-badge");
    const pollActive = async () => {
      let jobs = [];
      try {
        const response = await fetch(activeUrl, {headers: {Accept: "application/json"}});
        if (response.ok) jobs = (await response.json()).jobs;
      } catch (e) { /* offline: try again later */ }
      if (badge) { badge.textContent = jobs.length; badge.hidden = jobs.length === 0; }
      const rows = new Map(jobs.map((job) => [String(job.id), job]));
      document.querySelectorAll("tr[data-job-id]").forEach((row) => {
        const job = rows.get(row.dataset.jobId);
        if (job) paint(row, job);
        else if (row.dataset.state === "queued" || row.dataset.state === "running") {
          fetch("/jobs/" + row.dataset.jobId + ".json").then((r) => r.ok && r.json()).then((j) => j && paint(row, j));
        }
      });
      setTimeout(pollActive, jobs.length ? 1000 : 5000);
    };
    pollActive();
  }
})();
