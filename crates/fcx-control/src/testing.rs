//! Test fixture: a control plane over a real SQLite store and code store in a temp dir, with
//! a recording [`Node`] in place of the scheduler, so the control logic is checked without
//! root and without starting anything.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use fcx_async::{AsyncService, AsyncSettings};
use fcx_model::async_config::AsyncConfig;
use fcx_model::Function;
use fcx_runtime::{CodeCache, ProcessBackend, ProcessConfig};
use fcx_scheduler::{Backends, Deployed, InstanceInfo, Scheduler, SchedulerConfig};
use fcx_store::{CodeStore, SqliteStore, Store};
use serde_json::{json, Value};

use fcx_model::versions::{Alias, Version};

use crate::aliases::CreateAlias;
use crate::asyncs::PutAsyncConfig;
use crate::node::Node;
use crate::versions::PublishVersion;
use crate::{
    BodyCommand, Command, ControlError, ControlPlane, OffWorker, Paths, SchedulerError, WithBody,
};

/// What the control plane asked of the node.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // test records, compared whole
pub enum Call {
    Deploy {
        function: Function,
        version: Option<String>,
        code_zip: Option<PathBuf>,
    },
    RemoveFunction(String),
    RemoveVersion(String, String),
    Limits {
        function: String,
        reserved: Option<u32>,
        min_instances: u32,
    },
    AsyncConfig(String, Option<AsyncConfig>),
}

/// A node that records every call and tracks which functions it serves.
#[derive(Default)]
pub struct Recorder {
    calls: Mutex<Vec<Call>>,
    serving: Mutex<BTreeSet<String>>,
}

impl Recorder {
    /// The calls so far, and forgets them.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
}

impl Node for Recorder {
    fn deploy(&self, d: Deployed) {
        let key = match &d.version_id {
            None => d.function.function_name.clone(),
            Some(v) => format!("{}@{v}", d.function.function_name),
        };
        self.serving.lock().unwrap().insert(key);
        self.record(Call::Deploy {
            function: d.function,
            version: d.version_id,
            code_zip: d.code_zip,
        });
    }

    fn remove_function(&self, function: &str) {
        let versions = format!("{function}@");
        self.serving
            .lock()
            .unwrap()
            .retain(|k| k != function && !k.starts_with(&versions));
        self.record(Call::RemoveFunction(function.into()));
    }

    fn remove_version(&self, function: &str, version: &str) {
        self.serving
            .lock()
            .unwrap()
            .remove(&format!("{function}@{version}"));
        self.record(Call::RemoveVersion(function.into(), version.into()));
    }

    fn set_limits(&self, function: &str, reserved: Option<u32>, min_instances: u32) {
        self.record(Call::Limits {
            function: function.into(),
            reserved,
            min_instances,
        });
    }

    fn set_async_config(&self, function: &str, config: Option<AsyncConfig>) {
        self.record(Call::AsyncConfig(function.into(), config));
    }

    fn has_function(&self, function: &str) -> bool {
        self.serving.lock().unwrap().contains(function)
    }

    fn instances(&self, function: &str) -> Result<Vec<InstanceInfo>, SchedulerError> {
        if self.has_function(function) {
            Ok(Vec::new())
        } else {
            Err(SchedulerError::FunctionNotFound {
                function: function.to_owned(),
            })
        }
    }
}

/// A control plane on a temp dir, its recorder, and the dir.
pub struct Fixture {
    pub cp: Arc<ControlPlane>,
    pub node: Arc<Recorder>,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::open(tempfile::tempdir().unwrap())
    }

    /// A fresh control plane over the same data dir, as a restarted server has (nothing
    /// loaded yet: call `cp.load()`).
    pub fn restart(self) -> Fixture {
        let Fixture { cp, dir, .. } = self;
        drop(cp);
        Fixture::open(dir)
    }

    fn open(dir: tempfile::TempDir) -> Fixture {
        let data_dir = dir.path().to_owned();
        let db = data_dir.join("fcx.db");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
        let queue = fcx_store::queue::Queue::open(&db).unwrap();
        let paths = Paths {
            run_dir: data_dir.join("run"),
            log_dir: data_dir.join("logs"),
            data_dir,
        };
        // Never asked to start anything: the recorder stands in for it.
        let scheduler = Scheduler::new(
            Backends::new().with(Arc::new(ProcessBackend::new(ProcessConfig {
                run_dir: paths.run_dir.clone(),
                logs: fcx_runtime::LogWriter::start(
                    paths.log_dir.clone(),
                    Default::default(),
                    Default::default(),
                )
                .unwrap(),
                init: "/nonexistent/fcx".into(),
                cgroups: None,
                criu: None,
                prefix: "fcx-test".into(),
                pids_limit: 64,
                scheduling: Default::default(),
            }))),
            CodeCache::new(paths.run_dir.join("code")),
            SchedulerConfig {
                region: "test".into(),
                account_id: "1234567890123456".into(),
                start_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(1),
                freeze_after: None,
                max_instances: 1,
                sandboxes_per_function: 0,
                sandbox_limit: 0,
                metrics: Default::default(),
                error_code: |_| "TestError",
            },
            None,
        );
        let asyncs = AsyncService::new(
            Arc::new(queue),
            Arc::clone(&scheduler),
            AsyncSettings {
                workers: 1,
                retry_base: Duration::from_secs(1),
                region: "test".into(),
                account_id: "1234567890123456".into(),
                error_text: |e| e.to_string(),
                metrics: Default::default(),
            },
        );
        let node = Arc::new(Recorder::default());
        let paths_log_dir = paths.log_dir.clone();
        let cp = Arc::new(ControlPlane {
            store,
            code: CodeStore::open(&paths.data_dir.join("code")).unwrap(),
            node: Arc::clone(&node) as Arc<dyn Node>,
            scheduler,
            asyncs,
            aliases: Default::default(),
            publishing: Mutex::new(()),
            cluster: None,
            pg: None,
            seen: Mutex::default(),
            paths,
            region: "test".into(),
            account_id: "1234567890123456".into(),
            metrics: Default::default(),
            logs: fcx_runtime::LogWriter::start(
                paths_log_dir,
                Default::default(),
                Default::default(),
            )
            .unwrap(),
            instance_uids: crate::UidRange {
                first: 100_000,
                last: 165_535,
            },
            web: Default::default(),
            trigger_domain: "localhost".into(),
            timers: Default::default(),
            me: OnceLock::new(),
            egress: Mutex::new(None),
            _data_dir_lock: None,
        });
        let _ = cp.me.set(Arc::downgrade(&cp));
        cp.set_endpoint("127.0.0.1:9100".parse().unwrap());
        Fixture { cp, node, dir }
    }

    pub fn run<C: Command>(&self, command: C) -> Result<C::Output, ControlError> {
        command.run(&self.cp, OffWorker(()))
    }

    pub fn run_body<C: BodyCommand>(
        &self,
        command: C,
        body: Value,
    ) -> Result<C::Output, ControlError> {
        let body = serde_json::to_vec(&body).unwrap().into();
        WithBody { command, body }.run(&self.cp, OffWorker(()))
    }

    /// Creates a custom-runtime function with a one-file code package.
    pub fn create(&self, name: &str) -> Function {
        self.run_body(crate::functions::CreateFunction {}, function_body(name))
            .unwrap()
    }

    pub fn publish(&self, function: &str) -> Version {
        let command = PublishVersion {
            function_name: function.into(),
        };
        self.run_body(command, json!({})).unwrap()
    }

    pub fn create_alias(&self, function: &str, alias: Value) -> Alias {
        let command = CreateAlias {
            function_name: function.into(),
        };
        self.run_body(command, alias).unwrap()
    }

    pub fn put_async_config(&self, function: &str, config: Value) -> Value {
        let command = PutAsyncConfig {
            function_name: function.into(),
        };
        self.run_body(command, config).unwrap()
    }
}

/// A CreateFunction body for a custom runtime with a `bootstrap` script.
pub fn function_body(name: &str) -> Value {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .unwrap();
    w.write_all(b"#!/bin/sh\n").unwrap();
    let zip = w.finish().unwrap().into_inner();
    json!({
        "functionName": name,
        "runtime": "custom",
        "handler": "h",
        "code": { "zipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    })
}
