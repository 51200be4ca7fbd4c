"""Static checks of the container deployment: Dockerfile, docker-compose.yaml, .dockerignore.

No Docker engine is needed (none runs in CI): the Dockerfile is read with a small line parser
(continuations, comments, flags, JSON and shell forms), the compose file with yaml.safe_load
plus compose-style ``${VAR:-default}`` interpolation done here, and every check is a real
assertion on that parsed content. Each checker returns a list of problems, so the checkers are
also run against deliberately broken copies to prove they can fail.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

AIRFLOW_COMPONENTS = {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}
LONG_RUNNING_COMPONENTS = AIRFLOW_COMPONENTS
PROJECT_SOURCES = {"pyproject.toml", "src", "devtools", "dags", "include", "workloads"}
DEPENDENCY_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# Dummy values for the variables the compose file requires; none of them is a real secret.
DUMMY_ENV = {
    "ANTHROPIC_API_KEY": "sk-ant-dummy-value-for-tests",
    "AIRFLOW_JWT_SECRET": "jwt-secret-for-tests",
    "AIRFLOW_API_SECRET_KEY": "api-secret-for-tests",
}
# The only Anthropic-looking key allowed in committed deploy files: the emulator's placeholder.
API_KEY_RE = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")
ALLOWED_PLACEHOLDER_KEYS = {"sk-ant-emulator-local"}


# --------------------------------------------------------------------------------------------
# Dockerfile parsing
# --------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    cmd: str
    args: str
    line: int
    flags: dict[str, str] = field(default_factory=dict)

    def words(self) -> list[str]:
        """Arguments as a list: JSON (exec) form or shell words, with --flags removed."""
        rest = self.args.strip()
        if rest.startswith("["):
            try:
                return [str(x) for x in json.loads(rest)]
            except json.JSONDecodeError:
                pass
        return shlex.split(rest, comments=False)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; backslash continuations joined, comment lines dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and (not stripped or stripped.startswith("#")):
            continue  # comments and blank lines inside a continuation are ignored by Docker
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        joined = " ".join(part for part in buffer if part)
        buffer = []
        cmd, _, args = joined.partition(" ")
        flags: dict[str, str] = {}
        args = args.strip()
        while args.startswith("--"):
            flag, _, args = args.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            args = args.strip()
        instructions.append(Instruction(cmd.upper(), args, start, flags))
    if buffer:
        raise ValueError("Dockerfile ends inside a line continuation")
    return instructions


def substitute_args(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), value)


def from_image(instructions: list[Instruction]) -> str:
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.cmd == "ARG":
            name, _, default = ins.args.partition("=")
            args[name.strip()] = default.strip().strip('"')
        if ins.cmd == "FROM":
            return substitute_args(ins.words()[0], args)
    raise AssertionError("no FROM instruction")


def copies(instructions: list[Instruction]) -> list[tuple[int, list[str], str, Instruction]]:
    """(index, sources, destination, instruction) for each COPY/ADD from the build context."""
    out = []
    for index, ins in enumerate(instructions):
        if ins.cmd in ("COPY", "ADD") and "from" not in ins.flags:
            words = ins.words()
            out.append((index, words[:-1], words[-1], ins))
    return out


def copy_destination(instructions: list[Instruction], source: str) -> str | None:
    """Where a build-context file or folder lands in the image."""
    for _, sources, dest, _ in copies(instructions):
        for src in sources:
            if src.rstrip("/") == source.rstrip("/"):
                # a folder's contents go into dest; a file goes into dest/ when dest is a folder
                if (ROOT / src).is_file() and (dest.endswith("/") or len(sources) > 1):
                    return str(PurePosixPath(dest) / PurePosixPath(src).name)
                return dest.rstrip("/") or "/"
    return None


def pip_installs(instructions: list[Instruction]) -> list[tuple[int, str, list[str]]]:
    """(index, user in effect, pip arguments) for every `pip install` in a RUN."""
    user = "root"
    out = []
    for index, ins in enumerate(instructions):
        if ins.cmd == "FROM":
            user = "airflow" if "apache/airflow" in ins.args else "root"  # the image's default user
        elif ins.cmd == "USER":
            user = ins.args.split(":")[0].strip()
        elif ins.cmd == "RUN":
            for words in shell_commands(ins.args):
                for i in range(len(words) - 1):
                    if words[i].endswith("pip") and words[i + 1] == "install":
                        out.append((index, user, words[i + 2:]))
                    elif words[i : i + 4] == ["python", "-m", "pip", "install"]:
                        out.append((index, user, words[i + 4:]))
    return out


def shell_commands(script: str) -> list[list[str]]:
    """A RUN line's simple commands: words split at `&&`, `||`, `;`, `|` and redirections."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set("();<>|&"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


def option_values(words: list[str], *names: str) -> list[str]:
    values = []
    for i, word in enumerate(words):
        for name in names:
            if word == name and i + 1 < len(words):
                values.append(words[i + 1])
            elif name.startswith("--") and word.startswith(name + "="):
                values.append(word.split("=", 1)[1])
    return values


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name.split("[")[0])] = version.strip()
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


# --------------------------------------------------------------------------------------------
# Compose interpolation (the subset of the compose spec this file uses, and a bit more)
# --------------------------------------------------------------------------------------------


class MissingVariable(ValueError):
    pass


def interpolate(value: str, env: dict[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        nxt = value[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            depth, j = 1, i + 2
            while j < len(value) and depth:
                depth += {"{": 1, "}": -1}.get(value[j], 0)
                j += 1
            if depth:
                raise ValueError(f"unclosed ${{ in {value!r}")
            out.append(_expand(value[i + 2 : j - 1], env))
            i = j
        else:
            match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", value[i + 1 :])
            if not match:
                raise ValueError(f"invalid $ in {value!r} (use $$ for a literal $)")
            out.append(env.get(match.group(0), ""))
            i += 1 + match.end()
    return "".join(out)


def _expand(expr: str, env: dict[str, str]) -> str:
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", expr, re.S)
    if not match:
        raise ValueError(f"invalid interpolation ${{{expr}}}")
    name, op, word = match.group(1), match.group(2), match.group(3) or ""
    is_set = name in env
    non_empty = bool(env.get(name))
    if op is None:
        return env.get(name, "")
    if op in ("-", ":-"):
        use_default = not non_empty if op == ":-" else not is_set
        return interpolate(word, env) if use_default else env[name]
    if op in ("?", ":?"):
        if not (non_empty if op == ":?" else is_set):
            raise MissingVariable(f"{name}: {word}")
        return env[name]
    # + and :+
    return interpolate(word, env) if (non_empty if op == ":+" else is_set) else ""


def interpolate_tree(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(item, env) for key, item in node.items()}
    return node


def load_compose(env: dict[str, str] | None = None) -> dict:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    return interpolate_tree(raw, DUMMY_ENV if env is None else env)


def services(compose: dict) -> dict[str, dict]:
    return compose.get("services") or {}


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_words(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def airflow_component(service: dict) -> str | None:
    """`api-server`, `celery worker`, ... for an Airflow component; None for anything else."""
    words = command_words(service)
    if words[:1] == ["airflow"]:
        words = words[1:]
    if not words or words[0] in ("bash", "python", "sh"):
        return None
    return " ".join(words[:2]) if words[0] == "celery" else words[0]


def build_of(service: dict) -> dict | None:
    build = service.get("build")
    if build is None:
        return None
    return {"context": build} if isinstance(build, str) else build


def is_built_here(service: dict) -> bool:
    build = build_of(service)
    return build is not None and (ROOT / build.get("context", ".")).resolve() == ROOT


# --------------------------------------------------------------------------------------------
# Checkers: each returns a list of problems (empty = fine)
# --------------------------------------------------------------------------------------------


def check_from_matches_pins(image: str, airflow_pin: str, requires_python: str) -> list[str]:
    match = re.fullmatch(r"apache/airflow:(?P<airflow>[0-9][^-]*)-python(?P<python>\d+\.\d+)", image)
    if not match:
        return [f"FROM {image!r} is not an official apache/airflow:<version>-python<X.Y> tag"]
    problems = []
    if match["airflow"] != airflow_pin:
        problems.append(f"image Airflow {match['airflow']} != requirements.txt apache-airflow=={airflow_pin}")
    floor = re.search(r">=\s*(\d+\.\d+)", requires_python)
    if not floor or floor.group(1) != match["python"]:
        problems.append(f"image Python {match['python']} does not match requires-python {requires_python!r}")
    return problems


def check_postgres_major(compose: dict, major: int = 15) -> list[str]:
    images = [svc.get("image", "") for svc in services(compose).values()
              if "postgres" in svc.get("image", "")]
    if not images:
        return ["no postgres service"]
    problems = []
    for image in images:
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else "latest"
        found = re.match(r"(\d+)", tag)
        if not found or int(found.group(1)) != major:
            problems.append(f"postgres image {image!r} is not major version {major}")
    return problems


def check_no_committed_keys(texts: dict[str, str]) -> list[str]:
    problems = []
    for name, text in texts.items():
        for key in API_KEY_RE.findall(text):
            if key not in ALLOWED_PLACEHOLDER_KEYS:
                problems.append(f"{name}: literal API key {key[:12]}...")
    return problems


def check_host_paths(compose: dict) -> list[str]:
    problems = []
    named = set((compose.get("volumes") or {}).keys())
    for name, svc in services(compose).items():
        build = build_of(svc)
        if build is not None:
            context = ROOT / build.get("context", ".")
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: dockerfile {dockerfile} does not exist")
        env_files = svc.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file if isinstance(env_file, str) else env_file.get("path")
            required = True if isinstance(env_file, str) else env_file.get("required", True)
            if required and not (ROOT / path).exists():
                problems.append(f"{name}: env_file {path} does not exist")
        for volume in svc.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if not source:
                continue
            if source.startswith((".", "/", "~")):
                if not (ROOT / source).exists():
                    problems.append(f"{name}: host path {source} does not exist")
            elif source not in named:
                problems.append(f"{name}: named volume {source} is not declared under volumes:")
    return problems


def check_depends_on(compose: dict) -> list[str]:
    problems = []
    svcs = services(compose)
    for name, svc in svcs.items():
        depends = svc.get("depends_on") or {}
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on without conditions")
            continue
        for target, spec in depends.items():
            if target not in svcs:
                problems.append(f"{name}: depends on unknown service {target}")
                continue
            condition = (spec or {}).get("condition")
            if condition not in DEPENDENCY_CONDITIONS:
                problems.append(f"{name}: depends on {target} with condition {condition!r}")
            if condition == "service_healthy" and not svcs[target].get("healthcheck"):
                problems.append(f"{name}: waits for {target} to be healthy, but it has no healthcheck")
            if svcs[target].get("profiles") and not svc.get("profiles"):
                problems.append(f"{name}: always-on service depends on profiled service {target}")
    return problems


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.lstrip("!").strip().lstrip("/")
        line = line[2:] if line.startswith("./") else line
        regex = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif line.startswith("**", i):
                regex += ".*"
                i += 2
            elif line[i] == "*":
                regex += "[^/]*"
                i += 1
            elif line[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(line[i])
                i += 1
        patterns.append((negate, re.compile(regex.rstrip("/") + r"\Z")))
    return patterns


def dockerignored(relpath: str, patterns: list[tuple[bool, re.Pattern]]) -> bool:
    parts = PurePosixPath(relpath).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, pattern in patterns:
        if any(pattern.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def components(compose) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, svc in services(compose).items():
        component = airflow_component(svc)
        if component:
            found.setdefault(component, []).append(name)
    return found


# --------------------------------------------------------------------------------------------
# The parser and interpolation themselves
# --------------------------------------------------------------------------------------------


def test_dockerfile_parser_joins_continuations_and_reads_flags():
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM python:3.11\n"
        "COPY --chown=a:0 x.txt \\\n   # a comment inside\n   y.txt /dst/\n"
        "RUN pip install \\\n  -r /dst/x.txt\n"
    )
    assert [i.cmd for i in parsed] == ["FROM", "COPY", "RUN"]
    assert parsed[1].flags == {"chown": "a:0"} and parsed[1].words() == ["x.txt", "y.txt", "/dst/"]
    assert pip_installs(parsed) == [(2, "root", ["-r", "/dst/x.txt"])]
    with pytest.raises(ValueError):
        parse_dockerfile("RUN echo \\\n")


def test_interpolation_follows_compose_rules():
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$HOME $${X}", env) == "v d  d $HOME ${X}"
    assert interpolate("${UNSET:-http://h:${SET}}", env) == "http://h:v"
    with pytest.raises(MissingVariable):
        interpolate("${EMPTY:?required}", env)
    assert interpolate("${EMPTY?required}", env) == ""


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def test_from_tag_matches_pinned_airflow_and_python(instructions):
    airflow_pin = requirement_pins(ROOT / "requirements.txt")["apache-airflow"]
    requires_python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    image = from_image(instructions)
    assert check_from_matches_pins(image, airflow_pin, requires_python) == []
    # and the check does catch a drift in either version
    assert check_from_matches_pins(image.replace(airflow_pin, "3.0.0"), airflow_pin, requires_python)
    older_python = re.sub(r"python\d+\.\d+", "python3.9", image)
    assert check_from_matches_pins(older_python, airflow_pin, requires_python)
    assert check_from_matches_pins("python:3.11-slim", airflow_pin, requires_python)


def test_every_copy_source_exists_and_is_not_dockerignored(instructions):
    patterns = dockerignore_patterns()
    sources = [src for _, srcs, _, _ in copies(instructions) for src in srcs]
    assert sources, "the Dockerfile copies nothing from the build context"
    for src in sources:
        path = ROOT / src
        assert path.exists(), f"COPY source {src} does not exist in the repo"
        assert not dockerignored(src.rstrip("/"), patterns), f"COPY source {src} is excluded by .dockerignore"
        if path.is_dir():
            for file in path.rglob("*"):
                rel = file.relative_to(ROOT).as_posix()
                if file.is_file() and file.suffix in {".py", ".json", ".yaml", ".yml", ".sql", ".md"} \
                        and "__pycache__" not in rel:
                    assert not dockerignored(rel, patterns), f"{rel} would be left out of the image"


def test_dockerignore_keeps_local_state_and_secrets_out():
    patterns = dockerignore_patterns()
    for path in (".venv", ".venv/bin/python", ".local/demo/pg", ".git/HEAD", ".env",
                 "src/nightshift/__pycache__/x.cpython-311.pyc", ".pytest_cache", "nightshift.egg-info"):
        assert dockerignored(path, patterns), f".dockerignore does not exclude {path}"


def test_requirements_installed_with_constraints_as_airflow_user(instructions):
    req_dest = copy_destination(instructions, "requirements.txt")
    con_dest = copy_destination(instructions, "constraints.txt")
    assert req_dest and con_dest, "requirements.txt and constraints.txt must be copied into the image"
    installs = [(i, user, words) for i, user, words in pip_installs(instructions)
                if req_dest in option_values(words, "-r", "--requirement")]
    assert installs, f"no `pip install -r {req_dest}`"
    for _, user, words in installs:
        assert con_dest in option_values(words, "-c", "--constraint"), \
            "requirements installed without -c constraints"
        assert user == "airflow", "the official image wants pip run as the airflow user, not root"
    for _, user, words in pip_installs(instructions):
        assert user == "airflow", f"pip install {' '.join(words)} runs as {user}"
        assert "--user" not in words, "the image already installs for the airflow user; no --user"
        assert "--no-cache-dir" in words, f"pip install {' '.join(words)} leaves its cache in the image"


def test_dependency_layers_come_before_project_code(instructions):
    req_install = min(i for i, _, words in pip_installs(instructions)
                      if any(v.endswith("requirements.txt") for v in option_values(words, "-r")))
    code_copies = [i for i, srcs, _, _ in copies(instructions)
                   if {s.rstrip("/") for s in srcs} & PROJECT_SOURCES]
    assert code_copies, "the project's code is never copied"
    assert req_install < min(code_copies), \
        "copying code before installing requirements defeats the layer cache"


def test_celery_extras_pinned_exactly_and_agree_with_constraints(instructions):
    constraints = requirement_pins(ROOT / "constraints.txt")
    extras: dict[str, str] = {}
    for _, _, words in pip_installs(instructions):
        skip = set(option_values(words, "-r", "-c", "--requirement", "--constraint"))
        for word in words:
            if word.startswith("-") or word in skip or word.startswith("/") or word == ".":
                continue
            assert "==" in word, f"{word} is not pinned to an exact version"
            name, version = word.split("==", 1)
            extras[canonical(name.split("[")[0])] = version
    assert "apache-airflow-providers-celery" in extras, "the Celery worker needs the celery provider"
    assert "redis" in extras, "the Celery broker is Redis: pin the redis client"
    for name, version in extras.items():
        if name in constraints:
            assert constraints[name] == version, \
                f"{name}=={version} contradicts constraints.txt ({constraints[name]})"
    doc = DEPLOY_DOC.read_text()
    for name, version in extras.items():
        assert f"{name}=={version}" in doc, f"docs/deploy.md does not record the pin {name}=={version}"


def test_project_is_installed_as_a_distribution_with_workloads_beside_the_dags(instructions):
    copied = {src.rstrip("/") for _, srcs, _, _ in copies(instructions) for src in srcs}
    assert PROJECT_SOURCES <= copied, f"not copied: {sorted(PROJECT_SOURCES - copied)}"
    home = str(PurePosixPath(copy_destination(instructions, "pyproject.toml")).parent)
    project_installs = [words for _, _, words in pip_installs(instructions) if home in words]
    assert project_installs, f"the project at {home} is never pip-installed"
    assert all("--no-deps" in words for words in project_installs), "install the project with --no-deps"
    assert not any(option_values(words, "-e", "--editable") for words in project_installs), \
        "install the built distribution, as a provider is, not an editable copy"
    for package in ("src", "devtools"):
        assert str(PurePosixPath(copy_destination(instructions, package + "/")).parent) == home
    dags = PurePosixPath(copy_destination(instructions, "dags/"))
    assert PurePosixPath(copy_destination(instructions, "workloads/")) == dags.parent / "workloads"


def test_image_ends_as_the_airflow_user(instructions):
    users = [ins.args.split(":")[0].strip() for ins in instructions if ins.cmd == "USER"]
    assert users and users[-1] == "airflow"


# --------------------------------------------------------------------------------------------
# docker-compose.yaml
# --------------------------------------------------------------------------------------------


def test_compose_parses_and_shares_one_airflow_definition():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    assert "x-airflow-common" in raw, "Airflow services should share an x-airflow-common anchor"
    assert services(raw)


def test_services_built_from_the_dockerfile_share_one_build(compose):
    builds = {name: build_of(svc) for name, svc in services(compose).items() if build_of(svc)}
    assert builds, "no service is built from the Dockerfile"
    contexts = {(str((ROOT / b.get("context", ".")).resolve()), b.get("dockerfile", "Dockerfile"))
                for b in builds.values()}
    assert contexts == {(str(ROOT), "Dockerfile")}, f"services use different builds: {contexts}"
    images = {services(compose)[name].get("image") for name in builds}
    assert len(images) == 1, f"built services tag different images: {images}"


def test_all_airflow_components_are_present(compose, components):
    assert AIRFLOW_COMPONENTS <= set(components), f"missing: {sorted(AIRFLOW_COMPONENTS - set(components))}"
    for component, names in components.items():
        for name in names:
            assert is_built_here(services(compose)[name]), f"{name} is not built from ./Dockerfile"


def test_airflow_components_share_celery_settings_and_secrets(compose, components):
    names = [name for comp in AIRFLOW_COMPONENTS for name in components[comp]]
    envs = {name: env_of(services(compose)[name]) for name in names}
    for name, env in envs.items():
        assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", name
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__API_AUTH__JWT_SECRET",
                "AIRFLOW__API__SECRET_KEY",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API__BASE_URL",
                "AIRFLOW_CONN_NIGHTSHIFT_DB", "AIRFLOW_CONN_ANTHROPIC_DEFAULT"):
        values = {env.get(key) for env in envs.values()}
        assert len(values) == 1 and None not in values and "" not in values, \
            f"{key} differs or is unset: {values}"
    assert next(iter(envs.values()))["AIRFLOW__API_AUTH__JWT_SECRET"] == DUMMY_ENV["AIRFLOW_JWT_SECRET"]


def test_urls_point_at_the_services_that_serve_them(compose, components):
    svcs = services(compose)
    env = env_of(svcs[components["scheduler"][0]])
    api = components["api-server"][0]
    execution = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    container_ports = {str(p).split(":")[-1] for p in svcs[api].get("ports", [])} | \
                      {str(p) for p in svcs[api].get("expose", [])}
    assert execution.hostname == api and str(execution.port) in container_ports
    assert execution.path == "/execution/"
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and "redis" in svcs[broker.hostname].get("image", "")
    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    postgres = svcs[metadata.hostname]
    assert metadata.scheme.startswith("postgresql") and "postgres" in postgres.get("image", "")
    assert metadata.path.lstrip("/") == env_of(postgres)["POSTGRES_DB"]
    assert metadata.username == env_of(postgres)["POSTGRES_USER"]
    assert metadata.password == env_of(postgres)["POSTGRES_PASSWORD"]
    assert urlsplit(env["AIRFLOW__API__BASE_URL"]).scheme in ("http", "https")


def test_connection_env_vars_are_valid_after_substitution(compose, components):
    svcs = services(compose)
    env = env_of(svcs[components["celery worker"][0]])
    anthropic = json.loads(env["AIRFLOW_CONN_ANTHROPIC_DEFAULT"])
    assert anthropic["conn_type"] == "anthropic"
    assert anthropic["password"] == DUMMY_ENV["ANTHROPIC_API_KEY"], \
        "the API key must come from ANTHROPIC_API_KEY"
    assert anthropic.get("host", "") == "", "with no ANTHROPIC_BASE_URL the connection must use the real API"
    app = urlsplit(env["AIRFLOW_CONN_NIGHTSHIFT_DB"])
    assert app.scheme in ("postgres", "postgresql") and app.hostname in svcs
    app_db = app.path.lstrip("/")
    metadata_db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).path.lstrip("/")
    assert app_db and app_db != metadata_db, "the application needs its own database, apart from Airflow's"
    assert env.get("AIRFLOW__NIGHTSHIFT__DB_CONN_ID", "nightshift_db") == "nightshift_db", \
        "[nightshift] db_conn_id names the connection above"


def test_emulator_profile_is_reachable_from_the_connection():
    emulator_env = {**DUMMY_ENV, "ANTHROPIC_BASE_URL": "http://emulator:8099",
                    "ANTHROPIC_API_KEY": "sk-ant-emulator-local"}
    compose = load_compose(emulator_env)
    svcs = services(compose)
    worker = next(svc for svc in svcs.values() if airflow_component(svc) == "celery worker")
    host = urlsplit(json.loads(env_of(worker)["AIRFLOW_CONN_ANTHROPIC_DEFAULT"])["host"])
    emulator = svcs[host.hostname]
    assert emulator.get("profiles") == ["emulator"], "the emulator runs only under the `emulator` profile"
    words = command_words(emulator)
    assert words[:3] == ["python", "-m", "emulator"]
    assert option_values(words, "--port") == [str(host.port)]
    assert option_values(words, "--host") == ["0.0.0.0"]


def test_api_key_is_required_from_the_environment():
    without_key = {k: v for k, v in DUMMY_ENV.items() if k != "ANTHROPIC_API_KEY"}
    with pytest.raises(MissingVariable, match="ANTHROPIC_API_KEY"):
        load_compose(without_key)
    without_jwt = {k: v for k, v in DUMMY_ENV.items() if k != "AIRFLOW_JWT_SECRET"}
    with pytest.raises(MissingVariable, match="AIRFLOW_JWT_SECRET"):
        load_compose(without_jwt)


def test_secret_looking_settings_come_from_the_environment():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, svc in services(raw).items():
        for key, value in env_of(svc).items():
            if re.search(r"KEY|SECRET|TOKEN|PASSWORD", key) and not key.endswith("_FILE"):
                assert "${" in value, f"{name}: {key} has a literal value; take it from the environment"


def test_no_literal_api_key_is_committed():
    files = {p.name: p.read_text() for p in (DOCKERFILE, COMPOSE_FILE, DOCKERIGNORE, DEPLOY_DOC)}
    assert check_no_committed_keys(files) == []
    assert check_no_committed_keys({"x": 'password: "sk-ant-api03-AbCdEf123"'}), \
        "the scan must catch a real-looking key"


def test_postgres_is_major_version_15(compose):
    assert check_postgres_major(compose) == []
    broken = copy.deepcopy(compose)
    for svc in services(broken).values():
        if "postgres" in svc.get("image", ""):
            svc["image"] = "postgres:16-alpine"
    assert check_postgres_major(broken)


def test_every_referenced_host_path_exists(compose):
    assert check_host_paths(compose) == []
    broken = copy.deepcopy(compose)
    first = next(iter(services(broken).values()))
    first.setdefault("volumes", []).append("./no-such-dir:/x")
    first["env_file"] = ["no-such.env"]
    assert len(check_host_paths(broken)) == 2


def test_dependencies_have_conditions_and_healthchecks(compose, components):
    assert check_depends_on(compose) == []
    svcs = services(compose)
    init = [name for name, svc in svcs.items() if any("airflow db migrate" in w for w in command_words(svc))]
    assert len(init) == 1, f"expected one init service running `airflow db migrate`, found {init}"
    for component in LONG_RUNNING_COMPONENTS:
        for name in components[component]:
            svc = svcs[name]
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
            depends = svc.get("depends_on") or {}
            assert depends.get(init[0], {}).get("condition") == "service_completed_successfully", \
                f"{name} must wait for {init[0]} to finish"
            for backing in ("postgres", "redis"):
                assert depends.get(backing, {}).get("condition") == "service_healthy", f"{name} -> {backing}"
    broken = copy.deepcopy(compose)
    services(broken)[components["scheduler"][0]]["depends_on"]["nowhere"] = {"condition": "service_healthy"}
    assert check_depends_on(broken)


def test_init_migrates_airflow_and_upgrades_the_ledger(compose):
    svcs = services(compose)
    init = next(svc for svc in svcs.values() if any("airflow db migrate" in w for w in command_words(svc)))
    script = " ".join(command_words(init))
    app_db = urlsplit(env_of(init)["AIRFLOW_CONN_NIGHTSHIFT_DB"]).path.lstrip("/")
    assert "airflow nightshift db-upgrade" in script
    assert f"CREATE DATABASE {app_db}" in script, "the init must create the application database"
    assert init.get("restart", "no") == "no"
