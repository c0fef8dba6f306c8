"""The experiment report page's template (Jinja2, autoescaped): bench/harness/page.py fills it.

Stable hooks for scripts and browser tests: each table is a <table data-table="table3">, each model row
<tr data-model="...">; each task's gallery is <section data-task="...">, its column headings carry
data-column, every image is an <img data-thumb>; runs are <tr data-run="...">; curves <img data-curve>.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ experiment }}: results</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
 nav a { margin-right: 1em; }
 table { border-collapse: collapse; margin: .5em 0 1em; }
 th, td { border: 1px solid #ccc; padding: .25em .5em; vertical-align: top; }
 th { background: #f4f4f4; }
 .notes p { margin: .2em 0; font-size: .9em; color: #444; }
 .gallery td { text-align: center; }
 .gallery img { width: {{ thumb }}px; height: {{ thumb }}px; object-fit: contain; background: #f4f4f4; cursor: zoom-in; }
 .gallery th small { display: block; font-weight: normal; color: #555; }
 .pager button { margin: 0 .2em; }
 .pager button[aria-current="true"] { font-weight: bold; }
 .curves img { max-width: 480px; margin: .5em; border: 1px solid #ddd; }
 #overlay { display: none; position: fixed; inset: 0; background: rgba(0,0,0,.8); align-items: center; justify-content: center; }
 #overlay img { width: min(80vw, 80vh); height: min(80vw, 80vh); object-fit: contain; image-rendering: pixelated; background: #fff; }
 #overlay p { color: #fff; text-align: center; }
 details pre { font-size: .8em; max-width: 60em; overflow-x: auto; }
</style></head>
<body>
<h1>{{ experiment }}</h1>
{% if description %}<p>{{ description }}</p>{% endif %}
<p>Written from the run records with the tables; regenerate with <code>{{ command }}</code>. Every image here is a
thumbnail of at most {{ thumb }} px in <code>page/</code> beside this file; click one to enlarge it.</p>
<nav>{% for table in tables %}<a href="#{{ table.name }}">{{ table.title }}</a>{% endfor %}
 {% for gallery in galleries %}<a href="#gallery-{{ gallery.task }}">{{ gallery.task }}</a>{% endfor %}
 <a href="#curves">training curves</a> <a href="#runs">runs</a></nav>

{% for table in tables %}
<section id="{{ table.name }}">
 <h2>{{ table.title }}</h2>
 {% for line in table.before %}<p>{{ line | safe }}</p>{% endfor %}
 {% for block in table.blocks %}
 <table data-table="{{ table.name }}">
  <tr>{% for cell in block.header %}<th>{{ cell }}</th>{% endfor %}</tr>
  {% for row in block.rows %}<tr data-model="{{ row.model }}">{% for cell in row.cells %}<td>{{ cell | safe }}</td>{% endfor %}</tr>
  {% endfor %}
 </table>
 {% endfor %}
 <div class="notes">{% for line in table.after %}<p>{{ line | safe }}</p>{% endfor %}</div>
</section>
{% endfor %}

{% for gallery in galleries %}
<section id="gallery-{{ gallery.task }}" data-task="{{ gallery.task }}" class="gallery">
 <h2>{{ gallery.task }}: every test image, every model</h2>
 <p>{{ gallery.count }} test images, {{ gallery.per_page }} per page.</p>
 <div class="pager" data-pages="{{ gallery.pages }}">{% for page in range(gallery.pages) %}<button type="button" data-page="{{ page }}">{{ page + 1 }}</button>{% endfor %}</div>
 <table>
  <tr>{% for column in gallery.columns %}<th data-column="{{ column.label }}">{{ column.label }}{% if column.kid %}<small>{{ column.kid }}</small>{% endif %}</th>{% endfor %}</tr>
  {% for row in gallery.rows %}<tr data-page="{{ row.page }}"{% if row.page %} hidden{% endif %}>
   {% for image in row.images %}<td>{% if image %}<img data-thumb src="{{ image }}" alt="{{ row.name }}: {{ gallery.columns[loop.index0].label }}" loading="lazy">{% else %}–{% endif %}</td>{% endfor %}
  </tr>{% endfor %}
 </table>
</section>
{% endfor %}

<section id="curves" class="curves">
 <h2>Training curves</h2>
 {% for curve in curves %}<img data-curve src="{{ curve.src }}" alt="{{ curve.title }}" loading="lazy">{% else %}<p>No training curves (nothing was trained here).</p>{% endfor %}
</section>

<section id="runs">
 <h2>Runs</h2>
 <table>
  <tr><th>model</th><th>dataset</th><th>seed</th><th>state</th><th>run folder</th><th>settings</th></tr>
  {% for run in runs %}<tr data-run="{{ run.folder_name }}"><td>{{ run.variant }}</td><td>{{ run.dataset }}</td><td>{{ run.seed }}</td>
   <td>{{ run.state }}</td><td><code>{{ run.folder }}</code></td>
   <td><details><summary>identity</summary><pre>{{ run.settings }}</pre></details></td></tr>
  {% endfor %}
 </table>
</section>

<div id="overlay" role="dialog"><div><img alt=""><p></p></div></div>
<script>
 for (const pager of document.querySelectorAll(".pager")) {
   const rows = pager.parentElement.querySelectorAll("tr[data-page]");
   const show = (page) => {
     for (const row of rows) { row.hidden = row.dataset.page !== String(page); }
     for (const button of pager.querySelectorAll("button")) { button.setAttribute("aria-current", button.dataset.page === String(page)); }
   };
   pager.addEventListener("click", (event) => { if (event.target.dataset.page !== undefined) { show(event.target.dataset.page); } });
   show(0);
 }
 const overlay = document.getElementById("overlay");
 document.addEventListener("click", (event) => {
   if (event.target.matches("img[data-thumb]")) {
     overlay.querySelector("img").src = event.target.src;
     overlay.querySelector("p").textContent = event.target.alt;
     overlay.style.display = "flex";
   } else if (overlay.contains(event.target)) {
     overlay.style.display = "none";
   }
 });
 document.addEventListener("keydown", (event) => { if (event.key === "Escape") { overlay.style.display = "none"; } });
</script>
</body></html>
"""
