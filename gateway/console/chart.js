// A small live line chart: the last `size` values drawn as an SVG polyline.

const SVG = "http://www.w3.org/2000/svg";

export class Sparkline {
  constructor(svg, size = 60) {
    this.svg = svg;
    this.size = size;
    this.values = [];
    this.line = document.createElementNS(SVG, "polyline");
    svg.appendChild(this.line);
  }

  push(v) {
    this.values.push(v);
    if (this.values.length > this.size) this.values.shift();
    const top = Math.max(1, ...this.values);
    const step = 300 / (this.size - 1);
    const offset = this.size - this.values.length;
    this.line.setAttribute("points", this.values
      .map((x, i) => `${((offset + i) * step).toFixed(1)},${(58 - (x / top) * 56).toFixed(1)}`)
      .join(" "));
  }
}
