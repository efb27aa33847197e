//! `kustomize build` of deploy/'s kustomizations, for tests/tests/manifests.rs
//! and `cargo xtask manifests`: no kustomize (nor kubectl) installs from the
//! package registries oomtrace is built from, so this renders what those
//! kustomizations use, and refuses every other field rather than ignore
//! it: `resources` (files and directories) and `patches` that are JSON
//! patches (RFC 6902: add, remove, replace, test) with a `target`.
//! `cargo xtask manifests` checks the output against `kubectl kustomize`
//! where kubectl is on PATH.

use std::path::Path;

use serde_json::Value;

/// The objects `kustomize build DIR` would print, in resource order.
pub fn build(dir: &Path) -> Result<Vec<Value>, String> {
    let file = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let k: Value = yaml_serde::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let at = |what: &str| format!("{}: {what}", file.display());
    let obj = k.as_object().ok_or_else(|| at("not a mapping"))?;
    for key in obj.keys() {
        if !["apiVersion", "kind", "resources", "patches"].contains(&key.as_str()) {
            return Err(at(&format!(
                "`{key}` is not rendered here (tests/src/kustomize.rs)"
            )));
        }
    }
    if k["apiVersion"] != "kustomize.config.k8s.io/v1beta1" || k["kind"] != "Kustomization" {
        return Err(at("not a kustomize.config.k8s.io/v1beta1 Kustomization"));
    }
    let mut out = Vec::new();
    for r in k["resources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let rel = r
            .as_str()
            .ok_or_else(|| at("a resource that is not a path"))?;
        let path = dir.join(rel);
        if path.is_dir() {
            out.extend(build(&path)?);
        } else {
            out.extend(documents(&path)?);
        }
    }
    for p in k["patches"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let fields = p
            .as_object()
            .ok_or_else(|| at("a patch that is not a mapping"))?;
        if let Some(key) = fields
            .keys()
            .find(|k| !["path", "target"].contains(&k.as_str()))
        {
            return Err(at(&format!("patch field `{key}` is not rendered here")));
        }
        let rel = p["path"]
            .as_str()
            .ok_or_else(|| at("a patch without `path`"))?;
        let patch_file = dir.join(rel);
        let ops: Value = yaml_serde::from_str(
            &std::fs::read_to_string(&patch_file)
                .map_err(|e| format!("{}: {e}", patch_file.display()))?,
        )
        .map_err(|e| format!("{}: {e}", patch_file.display()))?;
        let ops = ops.as_array().ok_or_else(|| {
            format!(
                "{}: not a JSON patch (a list of operations)",
                patch_file.display()
            )
        })?;
        let target = &p["target"];
        let mut matched = 0;
        for obj in out.iter_mut().filter(|o| matches(o, target)) {
            for op in ops {
                apply(obj, op).map_err(|e| format!("{}: {e}", patch_file.display()))?;
            }
            matched += 1;
        }
        if matched == 0 {
            return Err(format!(
                "{}: its target {target} matches no resource",
                patch_file.display()
            ));
        }
    }
    Ok(out)
}

/// The non-empty YAML documents of a file.
pub fn documents(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for d in yaml_serde::Deserializer::from_str(&text) {
        let v = <Value as serde::Deserialize>::deserialize(d)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// Whether `obj` is what a patch's `target` selects (every field given).
fn matches(obj: &Value, target: &Value) -> bool {
    let api = obj["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
    let want = |field: &str, have: &str| target[field].as_str().is_none_or(|w| w == have);
    target.as_object().is_some_and(|t| {
        t.keys()
            .all(|k| ["group", "version", "kind", "name", "namespace"].contains(&k.as_str()))
    }) && want("group", group)
        && want("version", version)
        && want("kind", obj["kind"].as_str().unwrap_or_default())
        && want("name", obj["metadata"]["name"].as_str().unwrap_or_default())
        && want(
            "namespace",
            obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        )
}

/// One RFC 6902 operation.
pub fn apply(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path = op["path"].as_str().ok_or("an operation without `path`")?;
    let (parent, last) = split(path)?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or(format!("{path}: no `value`"))
    };
    match op["op"].as_str() {
        Some("test") => {
            let have = doc
                .pointer(path)
                .ok_or(format!("test {path}: nothing there"))?;
            if *have != value()? {
                return Err(format!("test {path}: {have} is not {}", value()?));
            }
        }
        Some("replace") => {
            let slot = doc
                .pointer_mut(path)
                .ok_or(format!("replace {path}: nothing there"))?;
            *slot = value()?;
        }
        Some("remove") => {
            let p = doc
                .pointer_mut(&parent)
                .ok_or(format!("remove {path}: no parent"))?;
            match p {
                Value::Object(m) => {
                    m.remove(&last)
                        .ok_or(format!("remove {path}: nothing there"))?;
                }
                Value::Array(a) => {
                    let i: usize = last
                        .parse()
                        .map_err(|_| format!("remove {path}: not an index"))?;
                    if i >= a.len() {
                        return Err(format!("remove {path}: out of range"));
                    }
                    a.remove(i);
                }
                _ => return Err(format!("remove {path}: parent is a scalar")),
            }
        }
        Some("add") => {
            let v = value()?;
            let p = doc
                .pointer_mut(&parent)
                .ok_or(format!("add {path}: no parent"))?;
            match p {
                Value::Object(m) => {
                    m.insert(last, v);
                }
                Value::Array(a) if last == "-" => a.push(v),
                Value::Array(a) => {
                    let i: usize = last
                        .parse()
                        .map_err(|_| format!("add {path}: not an index"))?;
                    if i > a.len() {
                        return Err(format!("add {path}: out of range"));
                    }
                    a.insert(i, v);
                }
                _ => return Err(format!("add {path}: parent is a scalar")),
            }
        }
        other => return Err(format!("{path}: operation {other:?} is not rendered here")),
    }
    Ok(())
}

/// A JSON pointer's parent pointer and last token (unescaped).
fn split(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or(format!("`{path}` is not a JSON pointer"))?;
    Ok((
        parent.to_string(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_operations() {
        let mut d = json!({"a": {"b": [1, 2]}, "c": 1});
        for op in [
            json!({"op": "add", "path": "/a/b/-", "value": 3}),
            json!({"op": "add", "path": "/a/b/0", "value": 0}),
            json!({"op": "replace", "path": "/c", "value": {"x": 1}}),
            json!({"op": "add", "path": "/a/k~1e", "value": true}),
            json!({"op": "remove", "path": "/a/b/1"}),
            json!({"op": "test", "path": "/c/x", "value": 1}),
        ] {
            apply(&mut d, &op).unwrap_or_else(|e| panic!("{op}: {e}"));
        }
        assert_eq!(
            d,
            json!({"a": {"b": [0, 2, 3], "k/e": true}, "c": {"x": 1}})
        );
        for bad in [
            json!({"op": "replace", "path": "/nope", "value": 1}),
            json!({"op": "remove", "path": "/a/b/9"}),
            json!({"op": "test", "path": "/c/x", "value": 2}),
            json!({"op": "move", "from": "/c", "path": "/d"}),
        ] {
            assert!(apply(&mut d, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_select_by_every_field_given() {
        let ds =
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "oomtrace"}});
        assert!(matches(&ds, &json!({"kind": "DaemonSet"})));
        assert!(matches(
            &ds,
            &json!({"group": "apps", "version": "v1", "kind": "DaemonSet", "name": "oomtrace"})
        ));
        assert!(!matches(
            &ds,
            &json!({"kind": "DaemonSet", "name": "other"})
        ));
        assert!(!matches(&ds, &json!({"group": "", "kind": "DaemonSet"})));
        assert!(
            !matches(&ds, &json!({"labelSelector": "a=b"})),
            "an unknown selector field"
        );
    }
}
