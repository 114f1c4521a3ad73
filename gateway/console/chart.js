// A small live line chart: the last `size` values drawn as an SVG polyline.

const SVG = "http://www.w3.org/2000/svg";

export class Sparkline {
  constructor(svg, size = 60) {
    this.svg = svg;
    this.size = size;
    this.values = [];
    const base = document.createElementNS(SVG, "line");
    for (const [k, v] of Object.entries({ x1: 0, y1: 58, x2: 300, y2: 58, class: "base" })) base.setAttribute(k, v);
    svg.appendChild(base);
    this.line = document.createElementNS(SVG, "polyline");
    svg.appendChild(this.line);
  }

  push(v) {
    this.values.push(v);
    if (this.values.length > this.size) this.values.shift();
    const top = Math.max(1, ...this.values);
    const step = 300 / (this.size - 1);
    // One value is drawn as a short flat segment, so that the first sample shows.
    const values = this.values.length === 1 ? [this.values[0], this.values[0]] : this.values;
    const offset = this.size - values.length;
    this.line.setAttribute("points", values
      .map((x, i) => `${((offset + i) * step).toFixed(1)},${(58 - (x / top) * 56).toFixed(1)}`)
      .join(" "));
  }
}
