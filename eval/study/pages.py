"""The study's pages, as Jinja templates (Flask escapes every value they show).

Stable hooks for scripts and browser tests: the start button has data-action="start"; a trial page's
root has data-trial="<id>"; each candidate is a button with data-candidate="<position>"; the final
page has data-action="done". Keys 1-9 choose the candidate at that position.
"""

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Image translation study</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #222; }
 .progress { height: 8px; background: #eee; border-radius: 4px; margin: .5em 0 1em; }
 .progress > div { height: 100%; background: #3a7; border-radius: 4px; }
 .row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
 figure { margin: 0; } figcaption { font-size: .9em; color: #555; text-align: center; }
 .source img, .candidates img, .examples img { width: 180px; height: 180px; object-fit: contain; background: #f4f4f4; }
 .candidates button { border: 3px solid transparent; padding: 4px; background: none; cursor: pointer; text-align: center; }
 .candidates button:hover, .candidates button:focus { border-color: #3a7; }
 .key { display: block; font-size: .9em; color: #555; }
 .examples img { width: 90px; height: 90px; }
 .start { font-size: 1.1em; padding: .5em 1.5em; }
</style></head>
<body>{% block body %}{% endblock %}</body></html>
"""

WELCOME = """{% extends "layout.html" %}{% block body %}
<h1>Which translation looks best?</h1>
<p>You will see {{ trials }} images. Each comes with {{ candidates }} versions of it, translated into another kind of
image (the page names it, e.g. "animation" or "zebra"). Click the version that is, in your opinion, the best
translation of the image into that kind, or press its number key. There are no right answers; answer
at your own pace. It takes about {{ minutes }} minutes.</p>
<p>Your answers are anonymous: we store a random number for your browser, your choices and how long each took,
nothing else. You may stop at any time; coming back with the same browser continues where you left off.</p>
<form method="post" action="{{ url_for('start') }}">
 <label><input type="checkbox" name="consent" value="yes" required> I agree to take part, and to my anonymous answers being used for research.</label>
 <p><button class="start" type="submit" data-action="start">{{ "Continue" if returning else "Start" }}</button></p>
</form>
{% endblock %}"""

TRIAL = """{% extends "layout.html" %}{% block body %}
<div data-trial="{{ trial_id }}">
 <div>Image {{ number }} of {{ total }}</div>
 <div class="progress" role="progressbar" aria-valuenow="{{ number - 1 }}" aria-valuemax="{{ total }}">
  <div style="width: {{ (100 * (number - 1) / total) | round(1) }}%"></div></div>
 <h2>Which image is the best translation of this one into <em>{{ target }}</em>?</h2>
 <div class="row">
  <figure class="source" data-role="source"><img src="{{ url_for('image', image_id=source) }}" alt="the image to translate">
   <figcaption>The image to translate</figcaption></figure>
  {% if examples %}<div class="examples"><div>Examples of {{ target }}:</div>
   {% for example in examples %}<img src="{{ url_for('image', image_id=example) }}" alt="an example of {{ target }}">{% endfor %}
  </div>{% endif %}
 </div>
 <form method="post" action="{{ url_for('vote') }}" id="vote">
  <input type="hidden" name="trial" value="{{ trial_id }}">
  <input type="hidden" name="elapsed_ms" value="0" id="elapsed">
  <div>Its versions as {{ target }}: click the best one, or press its number.</div>
  <div class="row candidates">
   {% for image_id in candidates %}
   <button type="submit" name="choice" value="{{ loop.index0 }}" data-candidate="{{ loop.index0 }}">
    <img src="{{ url_for('image', image_id=image_id) }}" alt="translation {{ loop.index }}"><span class="key">Translation {{ loop.index }}</span></button>
   {% endfor %}
  </div>
 </form>
</div>
<script>
 const shown = performance.now();
 const form = document.getElementById("vote");
 form.addEventListener("submit", () => { document.getElementById("elapsed").value = Math.round(performance.now() - shown); });
 document.addEventListener("keydown", (event) => {
   const button = document.querySelector('[data-candidate="' + (parseInt(event.key, 10) - 1) + '"]');
   if (button && !event.repeat) { button.click(); }
 });
</script>
{% endblock %}"""

DONE = """{% extends "layout.html" %}{% block body %}
<h1 data-action="done">Thank you!</h1>
<p>All {{ total }} answers are saved. You may close this page.</p>
{% endblock %}"""

PROBLEM = """{% extends "layout.html" %}{% block body %}
<h1>{{ title }}</h1><p>{{ message }}</p><p><a href="{{ url_for('welcome') }}">Back to the start</a></p>
{% endblock %}"""

# .html names: Flask turns autoescaping on by the template name
TEMPLATES = {"layout.html": LAYOUT, "welcome.html": WELCOME, "trial.html": TRIAL, "done.html": DONE, "problem.html": PROBLEM}
