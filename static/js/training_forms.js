// Small helpers for the training forms; the server validates everything again.
document.addEventListener("DOMContentLoaded", () => {
  const $ = (sel, root = document) => root.querySelector(sel);
  // A field the server flagged stays visible on the first render (so its error is seen); after
  // the user changes the choice that governs it, the choice decides.
  let firstRender = true;
  const hide = (el, hidden) => { el.hidden = hidden && !(firstRender && el.classList.contains("has-error")); };
  const show = (id, visible) => { const el = $(`#field-${id}`); if (el) hide(el, !visible); };

  // Launch form: show the hyperparameters the chosen method uses, prefilled with its defaults
  // (a value the user typed is kept); the RL set only for SFT then GRPO; the path box only for
  // "another local path"; the LoRA rank only with LoRA.
  const launch = $("#launch-form");
  if (launch) {
    const defaults = JSON.parse($("#method-defaults").textContent);
    const method = $("#id_method");
    const edited = new Set();
    launch.querySelectorAll("[id^=id_hp_]").forEach((el) => el.addEventListener("input", () => edited.add(el.id)));
    // The server renders the values to keep (defaults, a copied run's, or what was typed before an
    // error); only a change of method refills the untouched fields with that method's defaults.
    const sync = (refill) => {
      const values = defaults[method.value] || {};
      launch.querySelectorAll(".field[data-methods]").forEach((field) => {
        const used = field.dataset.methods.split(" ").includes(method.value);
        hide(field, !used);
        const input = field.querySelector("input, select");
        const key = input.id.replace(/^id_hp_/, "");
        if (refill && used && !edited.has(input.id) && key in values) {
          input.value = typeof values[key] === "boolean" ? String(values[key]) : values[key];
        }
      });
      show("rl_dataset", method.value === "sft_grpo");
      show("base_model_path", $("#id_base_model").value === "other");
      show("lora_rank", $("#id_use_lora").checked);
    };
    method.addEventListener("change", () => { firstRender = false; sync(true); });
    [$("#id_base_model"), $("#id_use_lora")].forEach((el) => el.addEventListener("change", () => { firstRender = false; sync(false); }));
    sync(false);
  }

  // Dataset form: show the filters of the chosen kind, and say plainly which teachers with
  // unset or negative terms this build would include.
  const build = $("#dataset-form");
  if (build) {
    const warning = $("#terms-warning");
    const sync = () => {
      const sft = $("#id_kind").value === "sft";
      ["teachers", "min_reward", "max_length", "provenance", "include_suspicious"].forEach((id) => show(id, sft));
      ["include_valid", "include_flaky"].forEach((id) => show(id, !sft));
      if (!warning) return;
      warning.hidden = !sft;
      const provenance = (build.querySelector("input[name=provenance]:checked") || {}).value || "allowed";
      const chosen = [...$("#id_teachers").selectedOptions].map((o) => o.value);
      const included = [];
      warning.querySelectorAll("li[data-teacher]").forEach((li) => {
        const inScope = !chosen.length || chosen.includes(li.dataset.teacher);
        const allowed = provenance === "any" || (provenance === "unknown" && li.dataset.terms === "unset");
        li.classList.toggle("included", inScope && allowed);
        if (inScope && allowed) included.push(li.dataset.teacher);
      });
      let line = $("#terms-included");
      if (!line) { line = document.createElement("p"); line.id = "terms-included"; line.className = "error"; warning.prepend(line); }
      line.hidden = !included.length;
      line.textContent = `This build INCLUDES episodes of teachers whose terms do not allow training: ${included.join(", ")}.`;
    };
    build.addEventListener("change", () => { firstRender = false; sync(); });
    sync();
  }

  // Evaluation form: the fields the chosen subject needs.
  const evaluation = $("#evaluation-form");
  if (evaluation) {
    const sync = () => {
      const subject = $("#id_subject").value;
      const model = subject === "checkpoint" || subject === "base";
      show("run", model);
      show("model_path", model);
      show("max_new_tokens", model);
      show("temperature", model);
      show("teacher", !model);
      show("max_steps", subject !== "episodes");
      show("k", subject !== "episodes");
    };
    $("#id_subject").addEventListener("change", () => { firstRender = false; sync(); });
    sync();
  }
});
