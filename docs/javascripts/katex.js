// Render pymdownx.arithmatex's \( ... \) and \[ ... \] with the vendored KaTeX (offline).
function renderMath() {
  document.querySelectorAll(".arithmatex").forEach((el) => {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(renderMath); // mkdocs-material's instant navigation
} else {
  document.addEventListener("DOMContentLoaded", renderMath);
}
