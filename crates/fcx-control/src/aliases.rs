//! Aliases (FC 3.0): CreateAlias, GetAlias, ListAliases, UpdateAlias, DeleteAlias. Every
//! version an alias names must exist; invocations resolve aliases from the cache `sync`
//! keeps.

use fcx_model::versions::{self, Alias};
use serde::{Deserialize, Serialize};

use crate::error::encode;
use crate::sync::Change;
use crate::time::now_rfc3339;
use crate::{keys, BodyCommand, Command, ControlError, ControlPlane, OffWorker};

impl ControlPlane {
    /// The cached alias, or AliasNotFound.
    fn alias(&self, function: &str, alias: &str) -> Result<Alias, ControlError> {
        self.aliases
            .get(function, alias)
            .ok_or_else(|| ControlError::AliasNotFound {
                function: function.to_owned(),
                alias: alias.to_owned(),
            })
    }

    /// Checks that every version `alias` names exists, then stores it.
    fn save_alias(&self, function: &str, alias: &Alias) -> Result<(), ControlError> {
        self.version(function, &alias.version_id)?;
        for v in alias.additional_version_weight.keys() {
            self.version(function, v)?;
        }
        let doc = encode("alias", alias)?;
        self.store
            .put_function_config(function, &keys::alias(&alias.alias_name), &doc)?;
        self.apply(Change::Alias {
            function: function.to_owned(),
            alias: alias.alias_name.clone(),
        })
    }
}

/// CreateAlias; the body is an `AliasInput` with `aliasName` and `versionId`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAlias {
    /// The function to add the alias to (`functionName` in the path).
    pub function_name: String,
}

impl BodyCommand for CreateAlias {
    type Output = Alias;

    fn run(self, cp: &ControlPlane, body: &[u8], _: OffWorker) -> Result<Alias, ControlError> {
        let name = self.function_name;
        cp.function(&name)?;
        let input = versions::parse_alias(body, true)?;
        let alias_name = input.alias_name.unwrap_or_default();
        if cp.aliases.get(&name, &alias_name).is_some() {
            return Err(ControlError::AliasExists {
                function: name,
                alias: alias_name,
            });
        }
        let now = now_rfc3339();
        let alias = Alias {
            alias_name,
            version_id: input.version_id.unwrap_or_default(),
            description: input.description.unwrap_or_default(),
            additional_version_weight: input.additional_version_weight.unwrap_or_default(),
            created_time: now.clone(),
            last_modified_time: now,
        };
        cp.save_alias(&name, &alias)?;
        Ok(alias)
    }
}

/// GetAlias.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAlias {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// The alias (`aliasName` in the path).
    pub alias_name: String,
}

impl Command for GetAlias {
    type Output = Alias;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<Alias, ControlError> {
        cp.function(&self.function_name)?;
        cp.alias(&self.function_name, &self.alias_name)
    }
}

/// ListAliases: all of the function's aliases (fcx does not page them).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAliases {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// Only aliases whose names start with it.
    pub prefix: Option<String>,
}

/// ListAliases' answer, in name order.
#[derive(Debug, Serialize)]
pub struct AliasList {
    /// Every matching alias.
    pub aliases: Vec<Alias>,
}

impl Command for ListAliases {
    type Output = AliasList;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<AliasList, ControlError> {
        let name = self.function_name;
        cp.function(&name)?;
        let prefix = keys::alias(self.prefix.as_deref().unwrap_or(""));
        let mut aliases: Vec<Alias> = cp
            .store
            .function_configs_of(&name, &prefix)?
            .into_iter()
            .filter_map(|(_, d)| serde_json::from_str(&d).ok())
            .collect();
        aliases.sort_by(|a, b| a.alias_name.cmp(&b.alias_name));
        Ok(AliasList { aliases })
    }
}

/// UpdateAlias; the body is an `AliasInput` without `aliasName`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAlias {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// The alias (`aliasName` in the path).
    pub alias_name: String,
}

impl BodyCommand for UpdateAlias {
    type Output = Alias;

    fn run(self, cp: &ControlPlane, body: &[u8], _: OffWorker) -> Result<Alias, ControlError> {
        let name = self.function_name;
        cp.function(&name)?;
        let mut alias = cp.alias(&name, &self.alias_name)?;
        let input = versions::parse_alias(body, false)?;
        crate::given(&mut alias.version_id, input.version_id);
        crate::given(&mut alias.description, input.description);
        crate::given(
            &mut alias.additional_version_weight,
            input.additional_version_weight,
        );
        alias.last_modified_time = now_rfc3339();
        cp.save_alias(&name, &alias)?;
        Ok(alias)
    }
}

/// DeleteAlias.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAlias {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// The alias (`aliasName` in the path).
    pub alias_name: String,
}

impl Command for DeleteAlias {
    type Output = ();

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<(), ControlError> {
        let (name, alias) = (self.function_name, self.alias_name);
        cp.function(&name)?;
        if !cp
            .store
            .delete_function_config(&name, &keys::alias(&alias))?
        {
            return Err(ControlError::AliasNotFound {
                function: name,
                alias,
            });
        }
        cp.apply(Change::Alias {
            function: name,
            alias,
        })
    }
}
