// Renders /openapi.json as a plain page (no external library, works offline).
"use strict";
(function () {
  const main = document.getElementById("docs");
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  fetch("/openapi.json", { credentials: "same-origin" })
    .then((r) => r.json())
    .then((doc) => {
      main.textContent = "";
      main.appendChild(el("p", doc.info && doc.info.description));
      main.appendChild(el("p", "Errors are JSON: {\"error\": message, \"status\": code} — 400 bad parameter, " +
        "401 missing token, 403 file refused, 404 unknown track, 413 upload too big, 503 index unreadable."));
      for (const [path, ops] of Object.entries(doc.paths || {})) {
        for (const [method, op] of Object.entries(ops)) {
          const sec = el("section", undefined, "endpoint");
          sec.appendChild(el("h2", method.toUpperCase() + " " + path));
          if (op.summary) sec.appendChild(el("p", op.summary, "summary"));
          if (op.description) sec.appendChild(el("p", op.description));
          if (op.parameters && op.parameters.length) {
            const t = el("table");
            const head = el("tr");
            ["parameter", "in", "type", "description"].forEach((h) => head.appendChild(el("th", h)));
            t.appendChild(head);
            for (const p of op.parameters) {
              const tr = el("tr");
              const s = p.schema || {};
              let type = s.type || "";
              if (s.enum) type += " (" + s.enum.join(" | ") + ")";
              if (s.default !== undefined) type += " = " + s.default;
              [p.name + (p.required ? " *" : ""), p.in, type, p.description || ""].forEach((c) => tr.appendChild(el("td", c)));
              t.appendChild(tr);
            }
            sec.appendChild(t);
          }
          const ul = el("ul");
          for (const [code, r] of Object.entries(op.responses || {})) ul.appendChild(el("li", code + ": " + (r.description || "")));
          sec.appendChild(ul);
          main.appendChild(sec);
        }
      }
    })
    .catch((e) => { main.textContent = "Could not load /openapi.json: " + e; });
})();
