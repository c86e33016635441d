"""A loopback Hugging Face Hub for tests: the API subset `huggingface_hub` uses to create, upload and download.

Runs a threaded HTTP server on 127.0.0.1 (free port) that stores model and Space repos in memory with git-like semantics:
every commit has a real 40-hex sha and a parent, branches and `refs/pr/N` refs point at commits, files are regular
(git blob) or LFS (sha256 object) entries. Commits are atomic: a commit either moves its ref or leaves everything
unchanged. Failure injection (`fail_next`) lets tests break the commit request or an LFS PUT mid-upload.

Routes (see HF-MECHANICS.md, "Uploading, and a loopback Hub for tests"):

    GET  /api/whoami-v2
    POST /api/repos/create                          409 (with "url") when it exists
    POST /api/validate-yaml                         400 with a text reason when the metadata is invalid
    GET  /api/models/{repo}[/revision/{rev}]        {"id", "sha", "private", "siblings", ...}
    POST /api/models/{repo}/preupload/{rev}         uploadMode lfs|regular, shouldIgnore, oid of the remote file
    POST /api/models/{repo}/branch/{branch}         409 when it exists (DELETE removes it)
    DELETE /api/repos/delete
    GET  /api/models/{repo}/refs
    POST /api/models/{repo}/commit/{rev}            NDJSON header/file/lfsFile/deletedFile/deletedFolder
    GET  /api/models/{repo}/tree/{rev}[/{path}]     ?recursive=true
    POST /{repo}.git/info/lfs/objects/batch         git-lfs batch API ("basic" transfer)
    PUT  /_lfs/{oid}                                the upload href handed out by the batch call
    HEAD|GET /{repo}/resolve/{rev}/{path}           X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size

Spaces (`repo_type="space"`, created with an `sdk`) answer the same routes under `/api/spaces/{repo}/...`,
`/spaces/{repo}.git/...` and `/spaces/{repo}/resolve/...`; the inspection helpers name them `spaces/{repo}`.

Errors carry `X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound` like the real Hub.

Usage (the client reads `HF_ENDPOINT` at import time, so run client code in a subprocess with `server.env()`):

    with LoopbackHub() as hub:
        subprocess.run([...], env={**os.environ, **hub.env()})
        hub.file_bytes("org/name", "config.json")
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


DEFAULT_TOKEN = "hf_loopback_test_token"
DEFAULT_USER = "hf-dgm-tester"

_LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".h5", ".onnx", ".msgpack", ".gguf", ".npz", ".npy",
    ".zip", ".gz", ".tar", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".model",
)
_LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
_GITATTRIBUTES = b"".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n".encode() for s in _LFS_SUFFIXES)

# A subset of the Hub's task ids and license ids, enough to catch typos in our cards.
_PIPELINE_TAGS = {
    "text-generation", "text-classification", "feature-extraction", "fill-mask", "sentence-similarity",
    "unconditional-image-generation", "text-to-image", "image-to-image", "image-classification", "robotics",
    "reinforcement-learning", "other", "summarization", "translation", "text2text-generation",
}
_LICENSES = {
    "apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0",
    "openrail", "llama2", "llama3", "gpl-3.0", "other", "unknown",
}


def git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Entry:
    """One file of a commit's tree."""

    size: int
    blob_id: str  # git blob sha1 of the content (regular) or of the LFS pointer (LFS)
    lfs_sha256: str | None = None  # set for LFS files; the content lives in the server's LFS store
    pointer_size: int | None = None


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    description: str
    files: dict[str, Entry]
    date: float = field(default_factory=time.time)


@dataclass
class Repo:
    repo_id: str
    private: bool
    refs: dict[str, str] = field(default_factory=dict)  # "main", "refs/pr/1", ... -> commit sha
    commits: dict[str, Commit] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)  # git blob sha1 -> content (regular files)
    num_prs: int = 0
    repo_type: str = "model"  # "model" | "space"
    sdk: str | None = None  # a Space's SDK (gradio, docker, static)


class HubError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


class LoopbackHub:
    """In-memory Hub on 127.0.0.1. Use as a context manager, or call `start()` / `stop()`."""

    def __init__(self, tokens: tuple[str, ...] = (DEFAULT_TOKEN,), user: str = DEFAULT_USER):
        self.tokens = set(tokens)
        self.user = user
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self._failures: list[dict[str, Any]] = []
        self._holds: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "LoopbackHub":
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "LoopbackHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self, token: str | None = DEFAULT_TOKEN) -> dict[str, str]:
        """Environment for a client subprocess: endpoint, no Xet, the token (None: no HF_TOKEN at all)."""
        env = {"HF_ENDPOINT": self.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_ETAG_TIMEOUT": "30", "HF_HUB_DOWNLOAD_TIMEOUT": "30"}
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    # ------------------------------------------------------------------ failure injection
    def fail_next(self, kind: str, status: int = 500, after: int = 0, message: str = "injected failure") -> None:
        """Make the next request of `kind` ("commit", "lfs_put", "lfs_batch", "preupload") fail with `status`.

        `after` lets that many requests of the kind succeed first (e.g. fail the second LFS PUT). Statuses
        429/500/502/503/504 are retried by the client (`http_backoff`); use e.g. 507 for a non-retried PUT failure.
        """
        with self._lock:
            self._failures.append({"kind": kind, "status": status, "after": after, "message": message})

    def hold_next(self, kind: str, timeout: float = 120) -> tuple[threading.Event, threading.Event]:
        """Make the next request of `kind` wait: returns (reached, release); `reached` is set when the request
        arrives, and it goes on when the test sets `release` (or after `timeout` s). For killing a client at a
        known point (e.g. between the creation of a repo and its first commit)."""
        hold = {"kind": kind, "reached": threading.Event(), "release": threading.Event(), "timeout": timeout}
        with self._lock:
            self._holds.append(hold)
        return hold["reached"], hold["release"]

    def _maybe_fail(self, kind: str) -> None:
        hold = None
        with self._lock:
            for candidate in self._holds:
                if candidate["kind"] == kind:
                    self._holds.remove(candidate)
                    hold = candidate
                    break
        if hold is not None:  # wait outside the lock: other requests go on
            hold["reached"].set()
            hold["release"].wait(hold["timeout"])
        with self._lock:
            for failure in self._failures:
                if failure["kind"] != kind:
                    continue
                if failure["after"] > 0:
                    failure["after"] -= 1
                    return
                self._failures.remove(failure)
                raise HubError(failure["status"], failure["message"])

    # ------------------------------------------------------------------ inspection helpers for tests
    def head_sha(self, repo_id: str, revision: str = "main") -> str:
        return self.repos[repo_id].refs[revision]

    def list_files(self, repo_id: str, revision: str = "main") -> list[str]:
        repo = self.repos[repo_id]
        return sorted(repo.commits[repo.refs[revision]].files)

    def file_bytes(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        repo = self.repos[repo_id]
        entry = repo.commits[self._resolve(repo, revision)].files[path]
        return self._content(repo, entry)

    def commit_history(self, repo_id: str, revision: str = "main") -> list[Commit]:
        repo = self.repos[repo_id]
        sha: str | None = self._resolve(repo, revision)
        history = []
        while sha is not None:
            history.append(repo.commits[sha])
            sha = repo.commits[sha].parent
        return history

    def seed_repo(self, repo_id: str, files: dict[str, bytes], private: bool = False, message: str = "seed") -> str:
        """Create a repo holding `files` directly (no HTTP); returns the commit sha."""
        with self._lock:
            repo = self._create(repo_id, private)
            tree = dict(repo.commits[repo.refs["main"]].files)
            for path, content in files.items():
                tree[path] = self._store(repo, path, content)
            return self._new_commit(repo, "main", message, "", tree).sha

    # ------------------------------------------------------------------ storage
    def _create(self, repo_id: str, private: bool, repo_type: str = "model", sdk: str | None = None) -> Repo:
        """`repo_id` is the storage key: `owner/name` for a model, `spaces/owner/name` for a Space."""
        real_id = repo_id.split("/", 1)[1] if repo_type == "space" else repo_id
        repo = Repo(repo_id=real_id, private=private, repo_type=repo_type, sdk=sdk)
        blob = git_blob_sha(_GITATTRIBUTES)
        repo.blobs[blob] = _GITATTRIBUTES
        self.repos[repo_id] = repo
        self._new_commit(repo, "main", "initial commit", "", {".gitattributes": Entry(len(_GITATTRIBUTES), blob)})
        return repo

    def _new_commit(self, repo: Repo, ref: str, title: str, description: str, files: dict[str, Entry]) -> Commit:
        parent = repo.refs.get(ref)
        payload = json.dumps([repo.repo_id, ref, parent, title, next(self._counter), time.time(),
                              sorted((p, e.blob_id) for p, e in files.items())]).encode()
        sha = hashlib.sha1(payload).hexdigest()
        commit = Commit(sha=sha, parent=parent, title=title, description=description, files=files)
        repo.commits[sha] = commit
        repo.refs[ref] = sha
        return commit

    @staticmethod
    def _is_lfs(path: str, size: int) -> bool:
        return path.lower().endswith(_LFS_SUFFIXES) or size >= _LFS_SIZE_THRESHOLD

    def _store(self, repo: Repo, path: str, content: bytes) -> Entry:
        if self._is_lfs(path, len(content)):
            sha256 = hashlib.sha256(content).hexdigest()
            self.lfs_objects[sha256] = content
            pointer = lfs_pointer(sha256, len(content))
            return Entry(len(content), git_blob_sha(pointer), sha256, len(pointer))
        blob = git_blob_sha(content)
        repo.blobs[blob] = content
        return Entry(len(content), blob)

    def _content(self, repo: Repo, entry: Entry) -> bytes:
        if entry.lfs_sha256 is not None:
            return self.lfs_objects[entry.lfs_sha256]
        return repo.blobs[entry.blob_id]

    def _repo(self, repo_id: str, token: str | None, write: bool = False) -> Repo:
        repo = self.repos.get(repo_id)
        authorized = token in self.tokens
        if repo is None or (repo.private and not authorized):
            raise HubError(401 if not authorized else 404, f"Repository Not Found for url: {repo_id}", "RepoNotFound")
        if write and not authorized:
            raise HubError(401, "Invalid credentials in Authorization header")
        return repo

    @staticmethod
    def _resolve(repo: Repo, revision: str) -> str:
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    # ------------------------------------------------------------------ API implementations
    def api_create(self, body: dict, token: str | None) -> tuple[int, dict]:
        if token not in self.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        repo_type = body.get("type") or "model"
        if repo_type not in ("model", "space"):
            raise HubError(400, "the loopback Hub stores model and Space repos only")
        if repo_type == "space" and body.get("sdk") not in ("gradio", "docker", "static"):
            raise HubError(400, f"a Space needs an sdk (gradio, docker, static); got {body.get('sdk')!r}")
        repo_id = f"{body.get('organization') or self.user}/{body['name']}"
        key = f"spaces/{repo_id}" if repo_type == "space" else repo_id
        url = f"{self.endpoint}/{key}"
        private = body.get("visibility", "private" if body.get("private") else "public") == "private"
        with self._lock:
            if key in self.repos:
                return 409, {"error": f"You already created this {repo_type} repo", "url": url}
            self._create(key, private, repo_type, body.get("sdk"))
        return 200, {"url": url, "name": repo_id}

    def api_model_info(self, repo_id: str, revision: str, token: str | None) -> dict:
        repo = self._repo(repo_id, token)
        sha = self._resolve(repo, revision)
        commit = repo.commits[sha]
        info = {
            "id": repo.repo_id, "modelId": repo.repo_id, "sha": sha, "private": repo.private, "author": repo_id.split("/")[0],
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date)),
            "siblings": [{"rfilename": p} for p in sorted(commit.files)], "tags": [], "downloads": 0, "likes": 0,
        }
        if repo.repo_type == "space":
            info["sdk"] = repo.sdk
            info["runtime"] = {"stage": "BUILDING"}
        return info

    def api_preupload(self, repo_id: str, revision: str, body: dict, token: str | None, create_pr: bool) -> dict:
        self._maybe_fail("preupload")
        repo = self._repo(repo_id, token, write=True)
        files = repo.commits[self._resolve(repo, revision)].files if not create_pr else {}
        out = []
        for item in body["files"]:
            lfs = self._is_lfs(item["path"], int(item["size"])) and int(item["size"]) > 0
            remote = files.get(item["path"])
            oid = None if remote is None else (remote.lfs_sha256 or remote.blob_id)
            out.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": oid})
        return {"files": out, "commitOid": self._resolve(repo, revision)}

    def api_lfs_batch(self, repo_id: str, body: dict, token: str | None) -> dict:
        self._maybe_fail("lfs_batch")
        self._repo(repo_id, token, write=True)
        objects = []
        for obj in body.get("objects", []):
            entry: dict[str, Any] = {"oid": obj["oid"], "size": int(obj["size"])}
            if obj["oid"] not in self.lfs_objects:  # already-known objects get no upload action
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/_lfs/{obj['oid']}", "header": {}}}
            objects.append(entry)
        return {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def api_lfs_put(self, oid: str, content: bytes) -> None:
        self._maybe_fail("lfs_put")
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, f"LFS object does not match its oid {oid}")
        with self._lock:
            self.lfs_objects[oid] = content

    def api_create_branch(self, repo_id: str, branch: str, body: dict, token: str | None) -> dict:
        with self._lock:
            repo = self._repo(repo_id, token, write=True)
            if branch in repo.refs:
                raise HubError(409, f"Reference already exists: {branch}")
            repo.refs[branch] = self._resolve(repo, body.get("startingPoint") or "main")
        return {}

    def api_delete_branch(self, repo_id: str, branch: str, token: str | None) -> dict:
        with self._lock:
            repo = self._repo(repo_id, token, write=True)
            if branch == "main" or branch not in repo.refs:
                raise HubError(404 if branch != "main" else 403, f"cannot delete branch {branch}", "RevisionNotFound")
            del repo.refs[branch]
        return {}

    def api_delete_repo(self, body: dict, token: str | None) -> dict:
        if token not in self.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        repo_id = f"{body.get('organization') or self.user}/{body['name']}"
        if body.get("type") == "space":
            repo_id = f"spaces/{repo_id}"
        with self._lock:
            if repo_id not in self.repos:
                raise HubError(404, f"Repository Not Found: {repo_id}", "RepoNotFound")
            del self.repos[repo_id]
        return {}

    def api_refs(self, repo_id: str, token: str | None) -> dict:
        repo = self._repo(repo_id, token)
        branches = [{"name": r, "ref": f"refs/heads/{r}", "targetCommit": s}
                    for r, s in repo.refs.items() if not r.startswith("refs/pr/")]
        prs = [{"name": r, "ref": r, "targetCommit": s} for r, s in repo.refs.items() if r.startswith("refs/pr/")]
        return {"branches": branches, "tags": [], "converts": [], "pullRequests": prs}

    def api_commit(self, repo_id: str, revision: str, lines: list[dict], token: str | None, create_pr: bool) -> dict:
        self._maybe_fail("commit")
        with self._lock:
            repo = self._repo(repo_id, token, write=True)
            base_sha = self._resolve(repo, revision)
            header = next((line["value"] for line in lines if line["key"] == "header"), None)
            if header is None:
                raise HubError(400, "commit payload has no header line")
            parent = header.get("parentCommit")
            if parent is not None and parent != base_sha:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(repo.commits[base_sha].files)
            new_blobs: dict[str, bytes] = {}
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "header":
                    continue
                path = value["path"]
                if key == "file":
                    content = base64.b64decode(value["content"])
                    blob = git_blob_sha(content)
                    new_blobs[blob] = content
                    tree[path] = Entry(len(content), blob)
                elif key == "lfsFile":
                    oid = value["oid"]
                    if oid not in self.lfs_objects:
                        raise HubError(422, f"LFS object {oid} for {path} was never uploaded")
                    size = len(self.lfs_objects[oid])
                    pointer = lfs_pointer(oid, size)
                    tree[path] = Entry(size, git_blob_sha(pointer), oid, len(pointer))
                elif key == "deletedFile":
                    if path not in tree:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del tree[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    for p in [p for p in tree if p.startswith(prefix)]:
                        del tree[p]
                else:
                    raise HubError(400, f"unknown commit line key {key!r}")
            # everything validated: apply atomically
            repo.blobs.update(new_blobs)
            pr_url = None
            ref = revision
            if create_pr:
                repo.num_prs += 1
                ref = f"refs/pr/{repo.num_prs}"
                repo.refs[ref] = base_sha
                pr_url = f"{self.endpoint}/{repo_id}/discussions/{repo.num_prs}"
            elif revision not in repo.refs:
                raise HubError(400, f"cannot commit on a detached revision {revision}")
            commit = self._new_commit(repo, ref, header.get("summary", ""), header.get("description", ""), tree)
        return {"commitUrl": f"{self.endpoint}/{repo_id}/commit/{commit.sha}", "commitOid": commit.sha,
                "pullRequestUrl": pr_url, "success": True}

    def api_tree(self, repo_id: str, revision: str, path: str, recursive: bool, token: str | None) -> list[dict]:
        repo = self._repo(repo_id, token)
        sha = self._resolve(repo, revision)
        files = repo.commits[sha].files
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in files):
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        out: list[dict] = []
        folders: set[str] = set()
        for p in sorted(files):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                if not recursive and depth > 1:
                    break
                folders.add(prefix + "/".join(parts[:depth]))
            if not recursive and len(parts) > 1:
                continue
            e = files[p]
            item: dict[str, Any] = {"type": "file", "oid": e.blob_id, "size": e.size, "path": p}
            if e.lfs_sha256 is not None:
                item["lfs"] = {"oid": e.lfs_sha256, "size": e.size, "pointerSize": e.pointer_size}
            out.append(item)
        out.extend({"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f}
                   for f in sorted(folders))
        return out

    def api_resolve(self, repo_id: str, revision: str, path: str, token: str | None) -> tuple[bytes, dict]:
        repo = self._repo(repo_id, token)
        sha = self._resolve(repo, revision)
        entry = repo.commits[sha].files.get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        content = self._content(repo, entry)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{entry.blob_id}"', "Content-Type": "application/octet-stream"}
        if entry.lfs_sha256 is not None:
            headers["X-Linked-Etag"] = f'"{entry.lfs_sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        return content, headers

    def api_validate_yaml(self, body: dict) -> tuple[int, Any]:
        text = body.get("content", "")
        if not text.startswith("---"):
            return 200, {"warnings": [{"message": "Empty or missing yaml metadata in repo card"}]}
        try:
            meta = yaml.safe_load(text.split("---", 2)[1]) or {}
        except (yaml.YAMLError, IndexError) as err:
            return 400, f"Invalid YAML in metadata: {err}"
        errors = []
        if not isinstance(meta, dict):
            return 400, "metadata must be a YAML mapping"
        if "license" in meta and meta["license"] not in _LICENSES:
            errors.append(f'"license" must be a known license id, got {meta["license"]!r}')
        if "pipeline_tag" in meta and meta["pipeline_tag"] not in _PIPELINE_TAGS:
            errors.append(f'"pipeline_tag" must be a known task, got {meta["pipeline_tag"]!r}')
        for key in ("tags", "datasets"):
            if key in meta and not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])):
                errors.append(f'"{key}" must be a list of strings')
        if "base_model" in meta and not isinstance(meta["base_model"], (str, list)):
            errors.append('"base_model" must be a string or a list of strings')
        for model in meta.get("model-index", []) or []:
            if not isinstance(model, dict) or "name" not in model:
                errors.append('"model-index[].name" is required')
                continue
            for result in model.get("results", []):
                if not isinstance(result.get("task", {}).get("type"), str):
                    errors.append('"model-index[].results[].task.type" is required')
                dataset = result.get("dataset", {})
                if not (isinstance(dataset.get("type"), str) and isinstance(dataset.get("name"), str)):
                    errors.append('"model-index[].results[].dataset" needs "type" and "name"')
                metrics = result.get("metrics", [])
                if not metrics or not all(isinstance(m.get("type"), str) and "value" in m for m in metrics):
                    errors.append('"model-index[].results[].metrics" needs entries with "type" and "value"')
        if errors:
            return 400, "\n".join(errors)
        return 200, {"warnings": []}


class _Handler(BaseHTTPRequestHandler):
    server_hub: LoopbackHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    # --------------------------------------------------------------- plumbing
    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(self, status: int, payload: Any = None, headers: dict | None = None, head: bool = False) -> None:
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload).encode()
            ctype = "application/json"
        elif isinstance(payload, str):
            data = payload.encode()
            ctype = "text/plain"
        else:
            data = payload or b""
            ctype = "application/octet-stream"
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", ctype)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        hub = self.server_hub
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        hub.requests.append((method, url.path))
        # split before unquoting: revisions like refs%2Fpr%2F1 and paths stay one segment each
        segments = [unquote(s) for s in url.path.strip("/").split("/")]
        body = self._body() if method in ("POST", "PUT", "DELETE") else b""
        token = self._token()
        try:
            self._route(method, segments, query, body, token)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.error_code:
                headers["X-Error-Code"] = err.error_code
            self._send(err.status, {"error": err.message}, headers, head=method == "HEAD")

    def _route(self, method: str, seg: list[str], query: dict, body: bytes, token: str | None) -> None:
        hub = self.server_hub
        create_pr = query.get("create_pr", ["0"])[0] in ("1", "true", "True")
        head = method == "HEAD"
        if seg[:2] == ["api", "whoami-v2"] and method == "GET":
            if token not in hub.tokens:
                raise HubError(401, "Invalid user token.")
            return self._send(200, {"type": "user", "name": hub.user, "orgs": [],
                                    "auth": {"accessToken": {"role": "write"}}})
        if seg[:3] == ["api", "repos", "create"] and method == "POST":
            status, payload = hub.api_create(json.loads(body or b"{}"), token)
            return self._send(status, payload)
        if seg[:3] == ["api", "repos", "delete"] and method == "DELETE":
            return self._send(200, hub.api_delete_repo(json.loads(body or b"{}"), token))
        if seg[:2] == ["api", "validate-yaml"] and method == "POST":
            status, payload = hub.api_validate_yaml(json.loads(body or b"{}"))
            return self._send(status, payload)
        if len(seg) >= 4 and seg[0] == "api" and seg[1] in ("models", "spaces"):
            repo_id, rest = f"{seg[2]}/{seg[3]}", seg[4:]
            if seg[1] == "spaces":
                repo_id = f"spaces/{repo_id}"
            if not rest and method == "GET":
                return self._send(200, hub.api_model_info(repo_id, "main", token))
            if rest[:1] == ["revision"] and len(rest) == 2 and method == "GET":
                return self._send(200, hub.api_model_info(repo_id, rest[1], token))
            if rest[:1] == ["preupload"] and len(rest) == 2 and method == "POST":
                return self._send(200, hub.api_preupload(repo_id, rest[1], json.loads(body), token, create_pr))
            if rest[:1] == ["commit"] and len(rest) == 2 and method == "POST":
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                return self._send(200, hub.api_commit(repo_id, rest[1], lines, token, create_pr))
            if rest[:1] == ["branch"] and len(rest) == 2 and method == "POST":
                return self._send(200, hub.api_create_branch(repo_id, rest[1], json.loads(body or b"{}"), token))
            if rest[:1] == ["branch"] and len(rest) == 2 and method == "DELETE":
                return self._send(200, hub.api_delete_branch(repo_id, rest[1], token))
            if rest == ["refs"] and method == "GET":
                return self._send(200, hub.api_refs(repo_id, token))
            if rest[:1] == ["tree"] and len(rest) >= 2 and method == "GET":
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                return self._send(200, hub.api_tree(repo_id, rest[1], "/".join(rest[2:]), recursive, token))
            raise HubError(404, f"no loopback route for {method} /{'/'.join(seg)}")
        space = seg[0] == "spaces" and len(seg) > 1
        if space:
            seg = seg[1:]
        if len(seg) == 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"]:
            repo_id = ("spaces/" if space else "") + f"{seg[0]}/{seg[1][:-4]}"
            return self._send(200, hub.api_lfs_batch(repo_id, json.loads(body), token),
                              {"Content-Type": "application/vnd.git-lfs+json"})
        if len(seg) == 2 and seg[0] == "_lfs" and method == "PUT":
            hub.api_lfs_put(seg[1], body)
            return self._send(200, {})
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = ("spaces/" if space else "") + f"{seg[0]}/{seg[1]}"
            content, headers = hub.api_resolve(repo_id, seg[3], "/".join(seg[4:]), token)
            return self._send(200, content, headers, head=head)
        raise HubError(404, f"no loopback route for {method} /{'/'.join(seg)}")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")


__all__ = ["LoopbackHub", "DEFAULT_TOKEN", "DEFAULT_USER", "git_blob_sha", "lfs_pointer"]
