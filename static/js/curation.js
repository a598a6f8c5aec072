// Keyboard curation on the bug list and the bug page (no library; see the `?` overlay).
// Shortcuts never fire while the reviewer types in a field, and never with Ctrl/Alt/Meta.
(() => {
  const root = document.getElementById("curation");
  if (!root) return;
  const page = root.dataset.page;
  const staff = root.dataset.staff === "1";
  const help = document.getElementById("keyboard-help");

  const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  const go = (url) => { if (url) window.location.assign(url); };

  // --- bug list: a selected row, kept across reloads of the same filter --------------------
  const rows = () => Array.from(document.querySelectorAll("#bug-table tbody tr[data-pk]"));
  const selectionKey = "bugforge.selection:" + location.pathname + location.search;
  let selected = 0;

  function select(index) {
    const all = rows();
    if (!all.length) return;
    selected = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((row, i) => {
      row.classList.toggle("selected", i === selected);
      row.setAttribute("aria-selected", i === selected ? "true" : "false");
    });
    all[selected].scrollIntoView({ block: "nearest" });
    try { sessionStorage.setItem(selectionKey, String(selected)); } catch (e) { /* private mode */ }
  }

  function quickApprove(row) {
    const form = document.getElementById("quick-review");
    if (!form || !row) return;
    if (row.dataset.curatable !== "1") {
      flash(`Bug ${row.dataset.pk} is not valid yet: only valid bugs are reviewed.`);
      return;
    }
    form.action = row.dataset.review;
    form.querySelector("[name=verdict]").value = "approve";
    form.submit();
  }

  function flash(text) {
    let box = document.getElementById("kbd-flash");
    if (!box) {
      box = document.createElement("div");
      box.id = "kbd-flash";
      box.className = "flash";
      box.setAttribute("role", "status");
      root.prepend(box);
    }
    box.textContent = text;
  }

  if (page === "bug-list") {
    rows().forEach((row, i) => row.addEventListener("click", (ev) => { if (ev.target.tagName !== "A") select(i); }));
    let saved = 0;
    try { saved = parseInt(sessionStorage.getItem(selectionKey) || "0", 10) || 0; } catch (e) { /* ignore */ }
    select(saved);
  }

  // --- bug page: the review form ------------------------------------------------------------
  const reviewForm = document.getElementById("review-form");
  const verdictInput = (value) => reviewForm && reviewForm.querySelector(`input[name=verdict][value=${value}]`);

  function submitReview(verdict) {
    if (!reviewForm) {
      flash(staff ? "This bug cannot be reviewed in its current status." : "Only staff can review bugs.");
      return;
    }
    verdictInput(verdict).checked = true;
    reviewForm.requestSubmit();
  }

  function startReject() {
    if (!reviewForm) { submitReview("reject"); return; }
    verdictInput("reject").checked = true;
    const notes = reviewForm.querySelector("[name=notes]");
    notes.focus();
    notes.placeholder = "why reject? Ctrl+Enter saves";
    reviewForm.scrollIntoView({ block: "center" });
  }

  if (reviewForm) {
    reviewForm.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); reviewForm.requestSubmit(); }
    });
    if (location.hash === "#reject") startReject();
  }

  const difficulties = ["<15m", "15m-1h", "1h-4h", ">4h"];

  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      if (help && help.open) help.close();
      else if (typing(document.activeElement)) document.activeElement.blur();
      return;
    }
    if (ev.ctrlKey || ev.altKey || ev.metaKey || typing(ev.target)) return;
    if (help && help.open && ev.key !== "?") return;
    const key = ev.key;
    let handled = true;
    if (key === "?") {
      if (help.open) help.close(); else help.showModal();
    } else if (page === "bug-list") {
      const all = rows();
      const row = all[selected];
      if (key === "j") select(selected + 1);
      else if (key === "k") select(selected - 1);
      else if ((key === "o" || key === "Enter") && row) go(row.dataset.href);
      else if (key === "a" && staff) quickApprove(row);
      else if (key === "r" && staff && row) go(row.dataset.href + "#reject");
      else if (key === "n") go((document.querySelector("a[rel=next]") || {}).href);
      else if (key === "p") go((document.querySelector("a[rel=prev]") || {}).href);
      else if (key === "/") document.getElementById("bug-search").focus();
      else handled = false;
    } else if (page === "bug-detail") {
      if (key === "j") go(root.dataset.next);
      else if (key === "k") go(root.dataset.previous);
      else if (key === "u") go(root.dataset.list);
      else if (key === "/") go(root.dataset.list + (root.dataset.list.includes("?") ? "&" : "?") + "focus=search");
      else if (key === "a" && staff) submitReview("approve");
      else if (key === "r" && staff) startReject();
      else if (reviewForm && "1234".includes(key) && key.length === 1) {
        reviewForm.querySelector("[name=difficulty]").value = difficulties[Number(key) - 1];
        flash(`difficulty: ${reviewForm.querySelector("[name=difficulty]").selectedOptions[0].textContent}`);
      } else handled = false;
    } else handled = false;
    if (handled) ev.preventDefault();
  });

  if (page === "bug-list" && new URLSearchParams(location.search).get("focus") === "search") {
    document.getElementById("bug-search").focus();
  }
})();
