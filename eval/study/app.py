"""The study's web app (Flask): consent, one trial at a time, thank-you; an admin CSV export.

Flask because the app is a handful of server-rendered forms over a synchronous SQLite database:
Jinja escapes what the pages show, sessions are one cookie, and its test client drives the whole
flow in tests. `serve` runs it under waitress, a multi-threaded production WSGI server in pure Python
(Flask's own server is for development only).

A participant is a random token in a cookie (HttpOnly, SameSite=Lax, so another site cannot post
votes for them). Trial order and candidate order are shuffled per participant (and per trial) by a
generator seeded with the token: a reload, or a participant coming back, sees the same page. A vote
names the trial and the position clicked; the server maps the position to the candidate through
that same order, so the browser never learns which method is where. A vote is accepted only for the
trial the server shows that participant next (a repeat of an answered one changes nothing). Image URLs
are random ids, and an image is served only while its bytes are those checked when the study was built.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import mimetypes
import random
from http import HTTPStatus

from flask import Flask, Response, abort, make_response, redirect, render_template, request, send_file, url_for
from jinja2 import DictLoader
from werkzeug.exceptions import HTTPException

from eval.study.pages import TEMPLATES
from eval.study.store import StudyStore, Trial

COOKIE = "study_participant"
MAX_BODY_BYTES = 2048            # a vote is a few short form fields
MAX_RESPONSE_MS = 24 * 3600 * 1000


def participant_order(token: str, trials: list[Trial]) -> list[Trial]:
    order = list(trials)
    random.Random(f"trials:{token}").shuffle(order)
    return order


def shown_slots(token: str, trial: Trial) -> list[int]:
    """The candidate slots in the order this participant sees them on this trial."""
    slots = [slot for slot, _, _ in trial.candidates]
    random.Random(f"candidates:{token}:{trial.id}").shuffle(slots)
    return slots


def create_app(store: StudyStore, admin_secret: str) -> Flask:
    app = Flask(__name__)
    app.jinja_loader = DictLoader(TEMPLATES)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    trials = store.trials()
    by_id = {trial.id: trial for trial in trials}
    tasks = store.tasks()
    candidates_per_trial = max((len(t.candidates) for t in trials), default=0)

    def problem(status: HTTPStatus, message: str) -> Response:
        return make_response(render_template("problem.html", title=status.phrase, message=message), status)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return problem(HTTPStatus(error.code), error.description or "")

    def participant() -> str | None:
        token = request.cookies.get(COOKIE)
        return token if store.is_participant(token) else None

    @app.get("/")
    def welcome():
        return render_template("welcome.html", trials=len(trials), candidates=candidates_per_trial,
                               minutes=max(1, round(len(trials) * 10 / 60)), returning=participant() is not None)

    @app.post("/start")
    def start():
        if request.form.get("consent") != "yes":
            return problem(HTTPStatus.BAD_REQUEST, "Please tick the box to agree before you start.")
        token = participant()
        response = redirect(url_for("trial"), code=303)
        if token is None:
            token = store.add_participant(request.headers.get("User-Agent", ""))
            response.set_cookie(COOKIE, token, max_age=90 * 24 * 3600, httponly=True, samesite="Lax")
        return response

    @app.get("/trial")
    def trial():
        token = participant()
        if token is None:
            return redirect(url_for("welcome"), code=303)
        answered = store.answered(token)
        order = participant_order(token, trials)
        pending = [t for t in order if t.id not in answered]
        if not pending:
            return redirect(url_for("done"), code=303)
        current = pending[0]
        images = dict((slot, image) for slot, _, image in current.candidates)
        task = tasks[current.task]
        return render_template("trial.html", trial_id=current.id, number=len(answered) + 1, total=len(trials),
                               target=task["target_domain"], examples=task["examples"], source=current.source,
                               candidates=[images[slot] for slot in shown_slots(token, current)])

    @app.post("/vote")
    def vote():
        token = participant()
        if token is None:
            return problem(HTTPStatus.FORBIDDEN, "Your browser has no place in this study yet: start from the first page.")
        current = by_id.get(request.form.get("trial", ""))
        if current is None:
            return problem(HTTPStatus.BAD_REQUEST, "This is not a trial of the study.")
        answered = store.answered(token)
        if current.id in answered:   # a repeat (double click, reload): nothing changes
            return redirect(url_for("trial"), code=303)
        pending = next(t for t in participant_order(token, trials) if t.id not in answered)
        if current.id != pending.id:   # only the trial the server shows this participant next can be answered
            return problem(HTTPStatus.CONFLICT, "This answer is not for the images you were shown; "
                                                "go back to the study page to see them.")
        slots = shown_slots(token, current)
        try:
            position = int(request.form.get("choice", ""))
            elapsed = int(request.form.get("elapsed_ms", "0"))
        except ValueError:
            return problem(HTTPStatus.BAD_REQUEST, "The answer was not understood.")
        if not 0 <= position < len(slots) or not 0 <= elapsed <= MAX_RESPONSE_MS:
            return problem(HTTPStatus.BAD_REQUEST, "The answer was not one of the images shown.")
        store.record_vote(token, current.id, slots, slots[position], elapsed)   # a repeat changes nothing
        return redirect(url_for("trial"), code=303)

    @app.get("/done")
    def done():
        return render_template("done.html", total=len(trials))

    @app.get("/image/<image_id>")
    def image(image_id: str):
        data = store.image_bytes(image_id)   # only the bytes checked when the study was built
        if data is None:
            abort(404)
        mimetype = mimetypes.guess_type(str(store.image_path(image_id)))[0] or "application/octet-stream"
        return send_file(io.BytesIO(data), mimetype=mimetype, max_age=3600)

    @app.get("/admin/votes.csv")
    def export():
        if "secret" in request.args:   # a URL ends up in shell history, proxy and server logs
            abort(400, "The admin secret goes in the X-Admin-Secret header, never in the URL: "
                       "curl -H \"X-Admin-Secret: <secret>\" <server>/admin/votes.csv (the server printed the line).")
        given = request.headers.get("X-Admin-Secret", "")
        if not hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(admin_secret.encode()).digest()):
            abort(403, "The admin secret is missing or wrong: it was printed when the server started.")
        buffer = io.StringIO()
        fields = ["participant", "trial", "task", "kind", "shown", "choice", "chosen", "response_ms", "created"]
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(store.votes())
        return Response(buffer.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=votes.csv"})

    return app
