//! Runner profiles: the programs a supervisor may start (issue 16). A profile is a named command
//! template. Four are built in (`claude`, `codex`, `gemini`, and `command`, which runs nothing
//! until the operator names its program); the operator adds or overrides profiles in
//! `.mesh/runners.toml` in the project.
//!
//! This is a security boundary. A tool call names a profile and passes data: a prompt, arguments
//! and a working directory inside the project. It never passes a program or a command line. The
//! data reaches the program as whole argv entries or on stdin, never through a shell:
//! - `{prompt}` stands for the prompt, as one argument (or as stdin);
//! - `{arguments}` expands to the call's arguments, one argv entry each, only where the operator
//!   put it (no built-in profile has it).
//!
//! The supervisor's own values may stand anywhere in an argument: `{mcp_config}` (the file that
//! points the worker's MCP client back at this store, bound to its agent), `{mesh_bin}` and `{db}`.
//!
//! The built-in profiles give the worker the mesh tools and nothing more. They carry no
//! permission-skipping flag; an operator who wants one writes it into their own profile.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{MeshError, Result};

/// Where the operator's profiles live, relative to the project root.
pub const RUNNERS_FILE: &str = ".mesh/runners.toml";

/// What a worker's program said it spent, summed over its runs (only profiles that report it).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spend {
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Spend {
    pub fn add(&mut self, other: Spend) {
        self.cost_usd += other.cost_usd;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// What a worker's output says about the tokens it spent, if it says anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UsageReport {
    #[default]
    None,
    /// Claude Code's `--output-format stream-json`: the `result` message has `usage` and `total_cost_usd`.
    ClaudeStreamJson,
    /// Codex `exec --json`: `turn.completed` events carry `usage`.
    CodexJson,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip)]
    pub name: String,
    /// The program: a path, or a name looked up on PATH.
    pub program: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// What to write on the program's stdin (a template), if anything.
    pub stdin: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub usage: UsageReport,
}

impl UsageReport {
    /// What one line of the worker's stdout says it spent, if it says so.
    pub fn spend_in(self, line: &str) -> Option<Spend> {
        let kind = match self {
            UsageReport::None => return None,
            UsageReport::ClaudeStreamJson => "result",
            UsageReport::CodexJson => "turn.completed",
        };
        if !line.contains(kind) {
            return None;
        }
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        if event.get("type").and_then(|t| t.as_str()) != Some(kind) {
            return None;
        }
        let usage = event.get("usage")?;
        let count = |key: &str| usage.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        Some(Spend {
            cost_usd: event.get("total_cost_usd").and_then(|c| c.as_f64()).unwrap_or(0.0),
            input_tokens: count("input_tokens")
                + count("cache_read_input_tokens")
                + count("cache_creation_input_tokens"),
            output_tokens: count("output_tokens"),
        })
    }
}

/// What a tool call gives a worker: data only.
#[derive(Debug, Clone, Default)]
pub struct WorkerData {
    pub prompt: String,
    pub arguments: Vec<String>,
    /// Relative to the project root.
    pub cwd: Option<String>,
}

/// What the supervisor gives a worker of its own.
#[derive(Debug, Clone)]
pub struct Context {
    pub project_root: PathBuf,
    pub mcp_config: PathBuf,
    pub mesh_bin: PathBuf,
    pub db: String,
}

/// A process to start, fully resolved: nothing in it goes through a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Profiles(BTreeMap<String, Profile>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunnersFile {
    #[serde(default)]
    runners: BTreeMap<String, Profile>,
}

impl Profiles {
    /// The built-in profiles.
    pub fn builtin() -> Self {
        let claude_args = [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--mcp-config",
            "{mcp_config}",
            "--strict-mcp-config",
            "--allowedTools",
            "mcp__mesh__*",
        ];
        let codex_args = [
            "exec",
            "--json",
            "--skip-git-repo-check",
            "-c",
            "mcp_servers.mesh.command=\"{mesh_bin}\"",
            "-c",
            "mcp_servers.mesh.args=[\"serve\", \"--db\", \"{db}\"]",
            "-c",
            "mcp_servers.mesh.env={ MESH_AGENT_TOKEN_FILE = \"{token_file}\" }",
            "-c",
            "mcp_servers.mesh.default_tools_approval_mode=\"approve\"",
            "-",
        ];
        let mut gemini = Profile::builtin(
            "gemini",
            Some("gemini"),
            &["--allowed-mcp-server-names", "mesh", "-p", "{prompt}"],
            None,
            UsageReport::None,
        );
        gemini.env.insert("GEMINI_CLI_SYSTEM_SETTINGS_PATH".into(), "{mcp_config}".into());
        let profiles = [
            Profile::builtin("claude", Some("claude"), &claude_args, Some("{prompt}"), UsageReport::ClaudeStreamJson),
            Profile::builtin("codex", Some("codex"), &codex_args, Some("{prompt}"), UsageReport::CodexJson),
            gemini,
            Profile::builtin("command", None, &[], Some("{prompt}"), UsageReport::None),
        ];
        Self(profiles.into_iter().map(|p| (p.name.clone(), p)).collect())
    }

    /// The built-in profiles, overridden and extended by the project's `.mesh/runners.toml`.
    pub fn load(project_root: &Path) -> Result<Self> {
        let mut profiles = Self::builtin();
        let path = project_root.join(RUNNERS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(profiles),
            Err(e) => return Err(MeshError::invalid("runners", format!("cannot read {}: {e}", path.display()))),
        };
        let file: RunnersFile =
            toml::from_str(&text).map_err(|e| MeshError::invalid("runners", format!("{}: {e}", path.display())))?;
        for (name, mut profile) in file.runners {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(MeshError::invalid(
                    "runners",
                    format!("`{name}` is not a profile name (letters, digits, - _ .)"),
                ));
            }
            profile.name = name.clone();
            profiles.0.insert(name, profile);
        }
        Ok(profiles)
    }

    pub fn get(&self, name: &str) -> Result<&Profile> {
        self.0.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.0.keys().map(String::as_str).collect();
            MeshError::invalid("profile", format!("no runner profile `{name}` (there are: {})", known.join(", ")))
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl Profile {
    fn builtin(name: &str, program: Option<&str>, args: &[&str], stdin: Option<&str>, usage: UsageReport) -> Self {
        Self {
            name: name.into(),
            program: program.map(str::to_string),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.map(str::to_string),
            env: BTreeMap::new(),
            usage,
        }
    }
}

/// The process `profile` starts for `data`, with the supervisor's `ctx`.
pub fn render(profile: &Profile, data: &WorkerData, ctx: &Context, token_file: &Path) -> Result<Launch> {
    let program = profile.program.clone().ok_or_else(|| {
        MeshError::invalid(
            "profile",
            format!("runner profile `{}` has no program: give it one in {RUNNERS_FILE}", profile.name),
        )
    })?;
    let fill = |template: &str| -> String {
        template
            .replace("{mcp_config}", &ctx.mcp_config.to_string_lossy())
            .replace("{mesh_bin}", &ctx.mesh_bin.to_string_lossy())
            .replace("{db}", &ctx.db)
            .replace("{token_file}", &token_file.to_string_lossy())
    };
    let mut args = Vec::new();
    for template in &profile.args {
        match template.as_str() {
            "{prompt}" => args.push(data.prompt.clone()),
            "{arguments}" => args.extend(data.arguments.iter().cloned()),
            other if other.contains("{prompt}") || other.contains("{arguments}") => {
                return Err(MeshError::invalid(
                    "profile",
                    format!(
                        "runner profile `{}`: {{prompt}} and {{arguments}} must stand alone as an argument",
                        profile.name
                    ),
                ))
            }
            other => args.push(fill(other)),
        }
    }
    if !profile.args.iter().any(|a| a == "{arguments}") && !data.arguments.is_empty() {
        return Err(MeshError::invalid("arguments", format!("runner profile `{}` takes no arguments", profile.name)));
    }
    let stdin = profile.stdin.as_deref().map(|t| if t == "{prompt}" { data.prompt.clone() } else { fill(t) });
    let env = profile.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect();
    let cwd = working_dir(&ctx.project_root, data.cwd.as_deref())?;
    Ok(Launch { program, args, stdin, cwd, env })
}

/// `relative` inside `root`: no absolute path, no `..`, and no link that leads out.
pub fn working_dir(root: &Path, relative: Option<&str>) -> Result<PathBuf> {
    let Some(relative) = relative.filter(|r| !r.is_empty()) else { return Ok(root.to_path_buf()) };
    let path = Path::new(relative);
    if path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(MeshError::invalid(
            "cwd",
            format!("`{relative}` must be a relative path inside the project, without `..`"),
        ));
    }
    let joined = root.join(path);
    let (Ok(real), Ok(real_root)) = (joined.canonicalize(), root.canonicalize()) else {
        return Err(MeshError::invalid("cwd", format!("`{relative}` is not a directory of the project")));
    };
    if !real.starts_with(&real_root) || !real.is_dir() {
        return Err(MeshError::invalid("cwd", format!("`{relative}` leads outside the project or is not a directory")));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(root: &Path) -> Context {
        Context {
            project_root: root.to_path_buf(),
            mcp_config: root.join("run/mcp.json"),
            mesh_bin: PathBuf::from("/opt/mesh-mcp"),
            db: "/data/mesh.db".into(),
        }
    }

    fn data(prompt: &str) -> WorkerData {
        WorkerData { prompt: prompt.into(), ..WorkerData::default() }
    }

    #[test]
    fn the_builtin_profiles_grant_the_mesh_tools_and_skip_no_permission() {
        let root = tempfile::tempdir().unwrap();
        let profiles = Profiles::builtin();
        for name in ["claude", "codex", "gemini"] {
            let launch =
                render(profiles.get(name).unwrap(), &data("review it"), &ctx(root.path()), Path::new("/t")).unwrap();
            let all = format!("{launch:?}").to_lowercase();
            for flag in ["dangerously", "yolo", "bypass", "skip-permissions", "full-auto"] {
                assert!(!all.contains(flag), "{name} carries {flag}: {all}");
            }
        }
        let claude =
            render(profiles.get("claude").unwrap(), &data("review it"), &ctx(root.path()), Path::new("/t")).unwrap();
        assert_eq!(claude.stdin.as_deref(), Some("review it"), "the prompt goes on stdin");
        assert!(claude.args.windows(2).any(|w| w == ["--allowedTools", "mcp__mesh__*"]), "{claude:?}");
        assert!(claude.args.contains(&root.path().join("run/mcp.json").to_string_lossy().to_string()));
    }

    #[test]
    fn data_fills_whole_arguments_and_never_a_command_line() {
        let root = tempfile::tempdir().unwrap();
        let profile = Profile {
            name: "echo".into(),
            program: Some("/bin/echo".into()),
            args: vec!["--".into(), "{prompt}".into(), "{arguments}".into()],
            stdin: None,
            env: BTreeMap::new(),
            usage: UsageReport::None,
        };
        let hostile = "x; rm -rf / $(reboot) `id` --dangerously-skip-permissions";
        let data = WorkerData { prompt: hostile.into(), arguments: vec!["a b".into(), "-c".into()], cwd: None };
        let launch = render(&profile, &data, &ctx(root.path()), Path::new("/t")).unwrap();
        assert_eq!(launch.program, "/bin/echo");
        assert_eq!(launch.args, vec!["--", hostile, "a b", "-c"]);
        // A profile without {arguments} takes none; a template may not splice data into an argument.
        let no_args = Profiles::builtin();
        let refused = render(no_args.get("claude").unwrap(), &data, &ctx(root.path()), Path::new("/t"));
        assert!(matches!(refused, Err(MeshError::InvalidArgument { field: "arguments", .. })), "{refused:?}");
        let spliced = Profile { args: vec!["--msg={prompt}".into()], ..profile };
        assert!(render(&spliced, &WorkerData::default(), &ctx(root.path()), Path::new("/t")).is_err());
    }

    #[test]
    fn spend_is_read_from_the_result_lines_of_the_profiles_that_report_it() {
        let claude = r#"{"type":"result","subtype":"success","total_cost_usd":0.0123,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}"#;
        let spent = UsageReport::ClaudeStreamJson.spend_in(claude).unwrap();
        assert_eq!((spent.input_tokens, spent.output_tokens), (15, 7));
        assert!((spent.cost_usd - 0.0123).abs() < 1e-12);
        let codex = r#"{"type":"turn.completed","usage":{"input_tokens":3,"output_tokens":4}}"#;
        assert_eq!(UsageReport::CodexJson.spend_in(codex).unwrap().output_tokens, 4);
        assert!(UsageReport::ClaudeStreamJson.spend_in(r#"{"type":"assistant","text":"result"}"#).is_none());
        assert!(UsageReport::None.spend_in(claude).is_none());
        assert!(UsageReport::ClaudeStreamJson.spend_in("result but not JSON").is_none());
    }

    #[test]
    fn unknown_or_programless_profiles_start_nothing() {
        let root = tempfile::tempdir().unwrap();
        let profiles = Profiles::builtin();
        assert!(matches!(profiles.get("bash"), Err(MeshError::InvalidArgument { field: "profile", .. })));
        let command = render(profiles.get("command").unwrap(), &data("x"), &ctx(root.path()), Path::new("/t"));
        assert!(matches!(command, Err(MeshError::InvalidArgument { field: "profile", .. })), "{command:?}");
    }

    #[test]
    fn the_working_directory_stays_inside_the_project() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("src/store")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        assert_eq!(
            working_dir(root.path(), Some("src/store")).unwrap(),
            root.path().join("src/store").canonicalize().unwrap()
        );
        assert_eq!(working_dir(root.path(), None).unwrap(), root.path());
        for bad in ["/etc", "../x", "src/../../x", "escape", "missing"] {
            let refused = working_dir(root.path(), Some(bad));
            assert!(matches!(refused, Err(MeshError::InvalidArgument { field: "cwd", .. })), "{bad}: {refused:?}");
        }
    }

    #[test]
    fn the_operators_file_adds_and_overrides_profiles() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(".mesh")).unwrap();
        let file = "[runners.worker]\nprogram = \"python3\"\nargs = [\"worker.py\", \"{arguments}\"]\n\n\
                    [runners.command]\nprogram = \"/usr/bin/env\"\n";
        std::fs::write(root.path().join(RUNNERS_FILE), file).unwrap();
        let profiles = Profiles::load(root.path()).unwrap();
        assert_eq!(profiles.get("worker").unwrap().args, vec!["worker.py", "{arguments}"]);
        assert_eq!(profiles.get("command").unwrap().program.as_deref(), Some("/usr/bin/env"));
        assert!(profiles.get("claude").is_ok(), "the built-ins stay");
        std::fs::write(root.path().join(RUNNERS_FILE), "[runners.x]\nshell = \"sh -c\"\n").unwrap();
        assert!(Profiles::load(root.path()).is_err(), "an unknown field is refused, not ignored");
    }
}
