//! A container restored from a snapshot instead of started by the OCI runtime: fcx sets up
//! what the runtime would have (namespace, rootfs with the snapshot's writable layer, the
//! bundle's files, the cgroups with their limits) and `criu restore -d` brings the process
//! tree back into it, under a subreaper waiter that stands for `crun run`.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::watch;

use super::container::Container;
use super::{attach_egress, group, rootfs, watch_exit, OciBackend, OciControl};
use crate::cgroup::Cgroup;
use crate::egress::PendingEgress;
use crate::instance::{Dial, Instance, InstanceParts};
use crate::logs::InstanceLog;
use crate::snapshot::{self, Criu, LazyPages, Snapshot};
use crate::spec::{ExitReason, InstanceSpec};
use crate::{process, sys, StartError, StartFailure};

fn sandbox(message: String) -> StartError {
    StartError::failed(StartFailure::Sandbox, message)
}

impl OciBackend {
    pub(super) async fn restore_container(
        &self,
        criu: &Criu,
        spec: &InstanceSpec,
        snap: &Snapshot,
    ) -> Result<Instance, StartError> {
        let started = Instant::now();
        let c = spec
            .container
            .as_ref()
            .ok_or_else(|| sandbox("the OCI backend got a function without an image".into()))?;
        let id = crate::instance::new_id();
        let name = format!("{}-{id}", self.config.prefix);
        let log = InstanceLog::for_instance(&self.config.logs, &spec.function_name, &id);
        let (netns, egress) =
            PendingEgress::with_pooled_namespace(&self.netns_pool, &id, spec.internet_access)
                .map_err(StartError::Namespace)?;
        let bundle = self.config.run_dir.join("oci").join(&id);
        let layer_dir = self.config.layer_dir.join(&id);
        let prepared = {
            let (bundle, layer_dir, lower, seed) = (
                bundle.clone(),
                layer_dir.clone(),
                c.rootfs.clone(),
                snap.upper(),
            );
            let resolv = if spec.internet_access {
                self.config.resolv_conf.clone()
            } else {
                String::new()
            };
            let id = id.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<rootfs::Rootfs> {
                std::fs::create_dir_all(&bundle)?;
                std::fs::write(bundle.join("resolv.conf"), resolv)?;
                std::fs::write(
                    bundle.join("hosts"),
                    format!(
                        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\t{id}\n"
                    ),
                )?;
                std::fs::write(bundle.join("instance-id"), format!("{id}\n"))?;
                let seed = seed.is_dir().then_some(seed);
                rootfs::Rootfs::mount_seeded(
                    &lower,
                    &layer_dir,
                    &bundle.join("rootfs"),
                    seed.as_deref(),
                )
            })
            .await
            .map_err(|e| StartError::Namespace(std::io::Error::other(e)))?
        };
        let rootfs = prepared.map_err(|e| {
            let _ = std::fs::remove_dir_all(&bundle);
            sandbox(format!(
                "cannot prepare the restored instance's rootfs: {e}"
            ))
        })?;
        let group_rel = self.cgroup_root().join(&id);
        let group = group::InstanceGroup::create(&group_rel, c.memory_mb).map_err(|e| {
            rootfs.remove();
            let _ = std::fs::remove_dir_all(&bundle);
            StartError::failed(
                StartFailure::CgroupRefused,
                format!("cannot create the cgroup {}: {e}", group_rel.display()),
            )
        })?;
        let container = Container::new(
            self.config.runtime.clone(),
            self.state_root.clone(),
            name,
            bundle.clone(),
            rootfs,
            group,
            None,
        );
        let teardown = |container: &Container| {
            container.teardown(&watch::channel(Some(ExitReason::Code(0))).1);
        };
        let procs = match container
            .group
            .create_container_groups(self.config.pids_limit, c.cpu)
        {
            Ok(p) => p,
            Err(e) => {
                teardown(&container);
                return Err(StartError::failed(
                    StartFailure::CgroupRefused,
                    format!("cannot create the restored container's groups: {e}"),
                ));
            }
        };
        let (read_end, write_end) = sys::pipe().map_err(StartError::Namespace)?;
        let pipe = format!(
            "pipe:[{}]",
            snapshot::inode(write_end.as_fd()).map_err(StartError::Namespace)?
        );
        let work = bundle.join("criu");
        std::fs::create_dir_all(&work).map_err(StartError::Namespace)?;
        let lazy = if criu.lazy_for(snap.meta.pages_bytes) {
            match LazyPages::start(criu, &snap.images(), &work).await {
                Ok(l) => Some(l),
                Err(e) => {
                    teardown(&container);
                    return Err(sandbox(e));
                }
            }
        } else {
            None
        };
        let mut args = snapshot::criu::restore_args(
            &snap.images(),
            &work,
            &bundle.join("pid"),
            &snap.meta.pipe,
            None,
        );
        args.push("--root".into());
        args.push(container.rootfs.target.display().to_string());
        for (name, kind) in &snap.meta.external_mounts {
            let source = match kind.as_str() {
                "resolv" => bundle.join("resolv.conf"),
                "hosts" => bundle.join("hosts"),
                "identity" => bundle.join("instance-id"),
                _ => "/dev/null".into(),
            };
            args.push("--external".into());
            args.push(format!("mnt[{name}]:{}", source.display()));
        }
        if lazy.is_some() {
            args.push("--lazy-pages".into());
        }
        let mut cmd = snapshot::criu::restore_command(
            &criu.path,
            &args,
            &work,
            netns.fd().as_raw_fd(),
            procs,
            &[(write_end.as_raw_fd(), snapshot::criu::FD_LOG)],
        );
        let prepared_in = started.elapsed();
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                teardown(&container);
                return Err(sandbox(format!("cannot run {}: {e}", criu.path.display())));
            }
        };
        drop(cmd);
        drop(write_end);
        log.attach(read_end, &id);
        let pid = child.id().unwrap_or(0);
        container
            .runtime_pid
            .store(pid, std::sync::atomic::Ordering::Release);
        let container = Arc::new(container);
        let exit_rx = watch_exit(child, Arc::clone(&container), c.memory_mb);
        let control = OciControl {
            runtime_pid: pid,
            cgroup: container.group.container_v2_dir().map(Cgroup::existing),
            container,
            exit: exit_rx.clone(),
            egress: OnceLock::new(),
            user: (0, 0),
            pipe,
        };
        let instance = Instance::new(InstanceParts {
            id,
            dial: Dial::Netns {
                netns,
                port: spec.port,
            },
            log,
            exit: exit_rx,
            control: Box::new(control),
        });
        let (listening, egress) = tokio::join!(
            process::wait_listening(&instance, spec, started),
            egress.ready()
        );
        attach_egress(&instance, egress.map_err(StartError::Namespace)?);
        if let Err(e) = listening {
            return Err(sandbox(format!(
                "the restored container did not come up ({e}); criu: {}",
                snapshot::criu::log_errors(&work.join("restore.log"))
            )));
        }
        if let Some(lazy) = lazy {
            lazy.detach();
        }
        tracing::debug!(
            instance = %instance.id,
            prepared_ms = prepared_in.as_secs_f64() * 1e3,
            listening_ms = started.elapsed().as_secs_f64() * 1e3,
            "container restored"
        );
        Ok(instance)
    }
}
