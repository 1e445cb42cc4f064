() => {
  // Pick a region: drag a box on the query photo (#query-image). On release, the page sends the box (fractions of
  // the picture's width and height) and a copy of the photo as the browser shows it (at most 1024 px, JPEG) to the
  // server, which crops in the core (stylishi.region). The photo's upload itself is deleted seconds after its first
  // search, so the copy comes from the browser; the server keeps nothing.
  if (window.__stylishiRegion) return;
  window.__stylishiRegion = true;
  const MIN_PX = 8, MAX_SIDE = 1024;
  let drag = null;

  const photo = (target) => {
    const img = target && target.closest && target.closest("#query-image img");
    return img && img.complete && img.naturalWidth > 0 ? img : null;
  };
  // Where the picture is drawn inside its <img> box (object-fit: contain letterboxes it).
  const drawn = (img) => {
    const r = img.getBoundingClientRect();
    const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
    const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
    return { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, width: w, height: h };
  };
  const clamp = (v) => Math.min(1, Math.max(0, v));
  const overlay = (img) => {
    const host = img.parentElement;
    let box = host.querySelector(".region-box");
    if (!box) {
      box = document.createElement("div");
      box.className = "region-box";
      if (getComputedStyle(host).position === "static") host.style.position = "relative";
      host.appendChild(box);
    }
    return box;
  };
  const setValue = (id, value) => {
    const field = document.querySelector(`#${id} textarea, #${id} input`);
    field.value = value;
    field.dispatchEvent(new Event("input", { bubbles: true }));
  };
  const copyOf = (img) => {
    const scale = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
    canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", 0.92);
  };

  document.addEventListener("dragstart", (e) => { if (photo(e.target)) e.preventDefault(); }, true);
  document.addEventListener("pointerdown", (e) => {
    const img = photo(e.target);
    if (!img || e.button !== 0) return;
    e.preventDefault();
    const d = drawn(img);
    drag = { img, d, x0: clamp((e.clientX - d.left) / d.width), y0: clamp((e.clientY - d.top) / d.height) };
    drag.x1 = drag.x0; drag.y1 = drag.y0;
  }, true);
  document.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const { img, d } = drag;
    drag.x1 = clamp((e.clientX - d.left) / d.width);
    drag.y1 = clamp((e.clientY - d.top) / d.height);
    const box = overlay(img), host = img.parentElement.getBoundingClientRect();
    Object.assign(box.style, {
      display: "block",
      left: `${d.left - host.left + Math.min(drag.x0, drag.x1) * d.width}px`,
      top: `${d.top - host.top + Math.min(drag.y0, drag.y1) * d.height}px`,
      width: `${Math.abs(drag.x1 - drag.x0) * d.width}px`,
      height: `${Math.abs(drag.y1 - drag.y0) * d.height}px`,
    });
  }, true);
  document.addEventListener("pointerup", () => {
    if (!drag) return;
    const { img, d, x0, y0, x1, y1 } = drag;
    drag = null;
    if (Math.abs(x1 - x0) * d.width < MIN_PX || Math.abs(y1 - y0) * d.height < MIN_PX) {
      overlay(img).style.display = "none";  // a click, not a drag
      return;
    }
    const box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)].map((v) => +v.toFixed(4));
    setValue("region-picture", copyOf(img));
    setValue("region-box", JSON.stringify(box));
    setTimeout(() => document.querySelector("#region-go").click(), 50);
  }, true);
}
