//! `trellis project`: projects are added and described by an administrator; runners then post
//! into them within their scope.

use clap::Subcommand;
use std::process::ExitCode;
use trellis_domain::project::{parse_git_url, ProjectEdit};
use trellis_domain::report::is_project_name;
use trellis_domain::view::CommitUrl;
use trellis_server::storage::Storage;

#[derive(Subcommand)]
pub enum ProjectAction {
    /// Add a project. Runners may then be scoped to it (`trellis runner add NAME --scope PROJECT`).
    Add {
        /// A lowercase slug, e.g. wireguard-linux-compat.
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// Change a project's description or links.
    Edit {
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// List projects.
    List,
}

#[derive(clap::Args)]
pub struct Settings {
    /// What the module is, shown on the front page.
    #[arg(long)]
    description: Option<String>,
    /// The module's git web URL, e.g. https://git.zx2c4.com/wireguard-linux-compat; commit
    /// pages link there (cgit, GitHub and GitLab forms are known); "" removes it.
    #[arg(long, value_name = "URL")]
    git_url: Option<String>,
    /// Where one commit's page is, with {sha}, when the git URL's form is not known; "" removes it.
    #[arg(long, value_name = "TEMPLATE")]
    commit_url: Option<String>,
}

impl Settings {
    fn edit(self) -> Result<ProjectEdit, String> {
        let git_url = match self.git_url.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(url) => Some(Some(parse_git_url(url)?)),
        };
        let commit_url = match self.commit_url.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(t) => Some(Some(CommitUrl::parse(t)?)),
        };
        Ok(ProjectEdit {
            description: self.description,
            git_url,
            commit_url,
        }
        .with_derived_commit_url())
    }
}

pub async fn run(action: ProjectAction, database_url: &str) -> anyhow::Result<ExitCode> {
    let (name, settings, adding) = match action {
        ProjectAction::List => return list(database_url).await,
        ProjectAction::Add { name, settings } => (name, settings, true),
        ProjectAction::Edit { name, settings } => (name, settings, false),
    };
    if !is_project_name(&name) {
        eprintln!("{name:?}: a project name is a lowercase slug such as wireguard-linux-compat");
        return Ok(ExitCode::from(2));
    }
    let edit = match settings.edit() {
        Ok(edit) => edit,
        Err(problem) => {
            eprintln!("{problem}");
            return Ok(ExitCode::from(2));
        }
    };
    let storage = Storage::connect(database_url).await?;
    let done = if adding {
        storage.add_project(&name, &edit, false).await?
    } else {
        storage.edit_project(&name, &edit).await?
    };
    storage.close().await;
    Ok(match (done, adding) {
        (true, true) => {
            eprintln!("project {name:?} added; scope a runner to it with `trellis runner add NAME --scope {name}`");
            ExitCode::SUCCESS
        }
        (true, false) => {
            eprintln!("project {name:?} changed");
            ExitCode::SUCCESS
        }
        (false, true) => {
            eprintln!(
                "a project named {name:?} already exists (`trellis project edit` changes it)"
            );
            ExitCode::from(1)
        }
        (false, false) => {
            eprintln!("no project named {name:?}");
            ExitCode::from(1)
        }
    })
}

async fn list(database_url: &str) -> anyhow::Result<ExitCode> {
    let storage = Storage::connect(database_url).await?;
    let projects = storage.project_summaries().await;
    storage.close().await;
    println!(
        "{:<32} {:>8} {:>8} {:>9}  DESCRIPTION",
        "NAME", "KERNELS", "COMMITS", "REPORTS"
    );
    for p in projects? {
        println!(
            "{:<32} {:>8} {:>8} {:>9}  {}",
            p.project.name, p.kernels, p.commits, p.reports, p.project.description
        );
    }
    Ok(ExitCode::SUCCESS)
}
