//! `trellis source`: the dnf/yum repositories whose kernel packages become a project's kernels.

use clap::Subcommand;
use std::process::ExitCode;
use trellis_domain::kernel::is_slug;
use trellis_domain::view::format_ms;
use trellis_server::discovery::{self, PollOutcome};
use trellis_server::storage::Storage;

#[derive(Subcommand)]
pub enum SourceAction {
    /// Poll a repository for a project's kernels of one stream and arch. The server polls every
    /// source on its --discovery-interval.
    Add {
        project: String,
        /// The repository's base URL, the folder holding repodata/, e.g.
        /// https://vault.almalinux.org/8.9/BaseOS/x86_64/os/
        #[arg(long)]
        url: String,
        /// The stream its kernels belong to, e.g. el8 or centos-stream-9.
        #[arg(long)]
        stream: String,
        #[arg(long, default_value = "x86_64")]
        arch: String,
        /// The package whose versions are kernels: kernel-devel, kernel-rt-devel, ...
        #[arg(long, default_value = "kernel-devel")]
        package: String,
    },
    /// List sources and how their last poll went.
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Stop polling a source; the kernels it found stay.
    Remove { id: i64 },
    /// Poll every source now and say what each found.
    Poll,
}

pub async fn run(action: SourceAction, database_url: &str) -> anyhow::Result<ExitCode> {
    if let SourceAction::Add {
        url,
        stream,
        arch,
        package,
        ..
    } = &action
    {
        let problems: Vec<String> = [
            (!(url.starts_with("http://") || url.starts_with("https://")))
                .then(|| format!("--url {url:?}: use an http:// or https:// URL")),
            (!is_slug(stream)).then(|| format!("--stream {stream:?}: a lowercase slug such as el8")),
            (!is_slug(arch)).then(|| format!("--arch {arch:?}: an arch such as x86_64")),
            discovery::package_variant(package)
                .is_none()
                .then(|| format!("--package {package:?}: a kernel-devel package such as kernel-devel or kernel-rt-devel")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !problems.is_empty() {
            eprintln!("{}", problems.join("\n"));
            return Ok(ExitCode::from(2));
        }
    }
    let storage = Storage::connect(database_url).await?;
    let code = match action {
        SourceAction::Add {
            project,
            url,
            stream,
            arch,
            package,
        } => match storage
            .add_kernel_source(&project, &url, &package, &stream, &arch)
            .await?
        {
            Some(source) => {
                println!("{}", source.id);
                eprintln!(
                    "source {} added: {package} from {} as {stream}/{arch} kernels of {project}",
                    source.id, source.url
                );
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no project named {project:?}");
                ExitCode::from(1)
            }
        },
        SourceAction::List { project } => {
            println!(
                "{:<4} {:<24} {:<14} {:<16} {:>8} {:<20}  URL / LAST ERROR",
                "ID", "PROJECT", "STREAM/ARCH", "PACKAGE", "KERNELS", "LAST SUCCESS"
            );
            for s in storage.kernel_sources(project.as_deref()).await? {
                println!(
                    "{:<4} {:<24} {:<14} {:<16} {:>8} {:<20}  {}",
                    s.id,
                    s.project,
                    format!("{}/{}", s.stream, s.arch),
                    s.package,
                    s.packages,
                    s.succeeded_at
                        .map(format_ms)
                        .unwrap_or_else(|| "never".into()),
                    match &s.error {
                        Some(e) => format!("{}\n{:<4} failing: {e}", s.url, ""),
                        None => s.url.clone(),
                    }
                );
            }
            ExitCode::SUCCESS
        }
        SourceAction::Remove { id } => {
            if storage.remove_kernel_source(id).await? {
                eprintln!("source {id} removed; the kernels it found stay");
                ExitCode::SUCCESS
            } else {
                eprintln!("no source {id}");
                ExitCode::from(1)
            }
        }
        SourceAction::Poll => {
            let client = discovery::client()?;
            let mut failed = false;
            for (source, outcome) in discovery::poll_all(&storage, &client).await {
                let said = match &outcome {
                    PollOutcome::Unchanged => "unchanged".to_string(),
                    PollOutcome::Updated {
                        packages,
                        new_kernels,
                    } => format!(
                        "{packages} packages, {} new kernel(s) {}",
                        new_kernels.len(),
                        new_kernels.join(" ")
                    ),
                    PollOutcome::Failed(e) => {
                        failed = true;
                        format!("FAILED: {e}")
                    }
                };
                println!("{} {} {}: {said}", source.id, source.project, source.url);
            }
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    };
    storage.close().await;
    Ok(code)
}
