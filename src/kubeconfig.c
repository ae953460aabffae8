/* kubeconfig.c — kubeconfig files and the in-cluster config, merged and resolved as kubectl does
 * (see kubeconfig.h). */
#include "kubeconfig.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "yamljson.h"

#define SA_DIR_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_FILES 32

/* The merged view of several kubeconfig files: name -> {"v": entry, "dir": base dir, "file": name} */
struct merged {
  json_t *clusters, *users, *contexts;
  const char *current_context; /* borrowed from one of the parsed docs */
  const char *current_file;
};

void kubecfg_free(struct kubecfg *c) {
  if (!c) return;
  free(c->source);
  free(c->server);
  free(c->ca_pem);
  free(c->tls_server_name);
  free(c->proxy_url);
  free(c->cert_pem);
  free(c->key_pem);
  free(c->token);
  free(c->token_file);
  free(c->username);
  free(c->password);
  if (c->exec) {
    free(c->exec->command);
    free(c->exec->api_version);
    for (char **p = c->exec->args; *p; p++) free(*p);
    for (char **p = c->exec->env; *p; p++) free(*p);
    free(c->exec);
  }
  free(c->namespace);
  free(c);
}

static kd_rc dupstr(char **dst, const char *src) {
  if (!src) return KD_OK;
  *dst = strdup(src);
  return *dst ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
}

/* Take server (from a file, --server or the environment) as the API's URL: https:// or http://,
 * trailing '/' dropped, never truncated. what/where name it in messages. */
static kd_rc set_server(struct kubecfg *c, const char *server, const char *where, const char *what) {
  if (!server || !server[0]) return kd_fail(KD_ERR_CONFIG, "%s: %s: key server is missing", where, what);
  if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
    return kd_fail(KD_ERR_CONFIG, "%s: %s: server '%s' must start with https:// or http://", where, what, server);
  kd_rc rc = dupstr(&c->server, server);
  if (rc) return rc;
  size_t sl = strlen(c->server);
  while (sl > 0 && c->server[sl - 1] == '/') c->server[--sl] = '\0';
  return KD_OK;
}

kd_rc kubecfg_check(const struct kubecfg *c) {
  if (c->insecure && c->ca_pem)
    return kd_fail(KD_ERR_CONFIG, "%s: specifying a root certificates file with the insecure flag is not allowed "
                                  "(remove certificate-authority or insecure-skip-tls-verify)",
                   c->source ? c->source : "kubeconfig");
  if (c->server && strncmp(c->server, "http://", 7) == 0 &&
      (c->token || c->token_file || c->username || c->password || c->exec))
    return kd_fail(KD_ERR_CONFIG, "%s: refusing to send credentials (%s) to %s in clear text: use an https:// server",
                   c->source ? c->source : "kubeconfig",
                   c->exec ? "exec plugin" : c->token || c->token_file ? "bearer token" : "basic auth", c->server);
  return KD_OK;
}

/* path relative to the kubeconfig's directory, as kubectl resolves it; caller frees */
static char *resolve_path(const char *dir, const char *p) {
  if (!p) return NULL;
  if (p[0] == '/' || !dir || !dir[0]) return strdup(p);
  size_t n = strlen(dir) + strlen(p) + 2;
  char *r = malloc(n);
  if (r) snprintf(r, n, "%s/%s", dir, p);
  return r;
}

/* Fill *data from key "<name>-data" (base64) or "<name>" (a file), in that order. */
static kd_rc load_blob(json_t *entry, const char *dir, const char *what, const char *file, const char *name,
                       bool inline_only, char **data, size_t *len) {
  char key[96];
  snprintf(key, sizeof key, "%s-data", name);
  const char *b64 = json_string_value(json_object_get(entry, key));
  if (b64 && b64[0]) {
    unsigned char *d;
    if (kd_base64_decode(b64, strlen(b64), &d, len) != KD_OK)
      return kd_fail(KD_ERR_CONFIG, "%s: %s: key %s is not valid base64", file, what, key);
    *data = (char *)d;
    return KD_OK;
  }
  const char *p = json_string_value(json_object_get(entry, name));
  if (!p || !p[0]) return KD_OK;
  if (inline_only)
    return kd_fail(KD_ERR_CONFIG, "%s: %s: key %s names a file (%.100s), which kcmdr does not read for a kubeconfig "
                   "from a Secret: use %s with the content", file, what, name, p, key);
  char *full = resolve_path(dir, p);
  if (!full) return kd_fail(KD_ERR_NOMEM, "out of memory");
  kd_rc rc = kd_read_file(full, KUBECFG_MAX_FILE, data, len);
  if (rc != KD_OK) rc = kd_fail(KD_ERR_CONFIG, "%s: %s: key %s: %s", file, what, name, kd_errmsg());
  free(full);
  return rc;
}

static kd_rc merge_section(json_t *doc, const char *section, const char *inner, json_t *into, const char *file,
                           const char *dir) {
  json_t *list = json_object_get(doc, section);
  if (!list || json_is_null(list)) return KD_OK;
  if (!json_is_array(list)) return kd_fail(KD_ERR_CONFIG, "%s: key %s must be a list", file, section);
  size_t i;
  json_t *item;
  json_array_foreach(list, i, item) {
    const char *name = json_string_value(json_object_get(item, "name"));
    if (!name) return kd_fail(KD_ERR_CONFIG, "%s: %s[%zu] has no name", file, section, i);
    if (json_object_get(into, name)) continue; /* first file wins */
    json_t *v = json_object_get(item, inner);
    if (v && !json_is_object(v) && !json_is_null(v))
      return kd_fail(KD_ERR_CONFIG, "%s: %s[%zu] (%s): key %s must be a mapping", file, section, i, name, inner);
    json_t *e = json_pack("{s:O?,s:s,s:s}", "v", v ? v : json_null(), "dir", dir ? dir : "", "file", file);
    if (!e || json_object_set_new(into, name, e) != 0) return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  return KD_OK;
}

static kd_rc parse_exec(json_t *ex, const char *file, const char *user, struct kubecfg_exec **out) {
  kd_rc rc = KD_OK;
  struct kubecfg_exec *e = calloc(1, sizeof *e);
  if (!e) return kd_fail(KD_ERR_NOMEM, "out of memory");
  const char *cmd = json_string_value(json_object_get(ex, "command"));
  const char *api = json_string_value(json_object_get(ex, "apiVersion"));
  if (!cmd || !cmd[0]) {
    rc = kd_fail(KD_ERR_CONFIG, "%s: user %s: exec: key command is missing", file, user);
    goto fail;
  }
  if (!api || (strcmp(api, "client.authentication.k8s.io/v1") != 0 &&
               strcmp(api, "client.authentication.k8s.io/v1beta1") != 0)) {
    rc = kd_fail(KD_ERR_CONFIG, "%s: user %s: exec: apiVersion '%s' is not client.authentication.k8s.io/v1 or v1beta1",
                 file, user, api ? api : "");
    goto fail;
  }
  if ((rc = dupstr(&e->command, cmd)) || (rc = dupstr(&e->api_version, api))) goto fail;
  e->provide_cluster_info = json_is_true(json_object_get(ex, "provideClusterInfo"));
  json_t *args = json_object_get(ex, "args"), *env = json_object_get(ex, "env"), *v;
  size_t i;
  if (json_array_size(args) > KUBECFG_MAX_ARGS || json_array_size(env) > KUBECFG_MAX_ARGS) {
    rc = kd_fail(KD_ERR_CONFIG, "%s: user %s: exec: more than %d args or env entries", file, user, KUBECFG_MAX_ARGS);
    goto fail;
  }
  json_array_foreach(args, i, v) {
    if (!json_is_string(v)) {
      rc = kd_fail(KD_ERR_CONFIG, "%s: user %s: exec: args[%zu] is not a string", file, user, i);
      goto fail;
    }
    if ((rc = dupstr(&e->args[i], json_string_value(v)))) goto fail;
  }
  json_array_foreach(env, i, v) {
    const char *n = json_string_value(json_object_get(v, "name"));
    const char *val = json_string_value(json_object_get(v, "value"));
    if (!n || !val) {
      rc = kd_fail(KD_ERR_CONFIG, "%s: user %s: exec: env[%zu] needs name and value", file, user, i);
      goto fail;
    }
    size_t len = strlen(n) + strlen(val) + 2;
    if (!(e->env[i] = malloc(len))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    snprintf(e->env[i], len, "%s=%s", n, val);
  }
  *out = e;
  return KD_OK;
fail:
  free(e->command);
  free(e->api_version);
  for (char **p = e->args; *p; p++) free(*p);
  for (char **p = e->env; *p; p++) free(*p);
  free(e);
  return rc;
}

static kd_rc resolve(struct merged *m, const struct kubecfg_opts *opts, bool inline_only, struct kubecfg *c) {
  kd_rc rc;
  const char *ctxname = opts && opts->context ? opts->context : m->current_context;
  if (!ctxname || !ctxname[0])
    return kd_fail(KD_ERR_CONFIG, "%s: no current-context is set and no --context was given",
                   m->current_file ? m->current_file : "kubeconfig");
  json_t *ce = json_object_get(m->contexts, ctxname);
  if (!ce)
    return kd_fail(KD_ERR_CONFIG, "%s: context '%s' is not defined in any kubeconfig file%s",
                   m->current_file ? m->current_file : "kubeconfig", ctxname,
                   opts && opts->context ? " (from --context)" : " (from current-context)");
  json_t *ctx = json_object_get(ce, "v");
  const char *cfile = json_string_value(json_object_get(ce, "file"));
  const char *clname = json_string_value(json_object_get(ctx, "cluster"));
  const char *uname = json_string_value(json_object_get(ctx, "user"));
  if (!clname || !clname[0]) return kd_fail(KD_ERR_CONFIG, "%s: context %s: key cluster is missing", cfile, ctxname);
  json_t *cle = json_object_get(m->clusters, clname);
  if (!cle) return kd_fail(KD_ERR_CONFIG, "%s: context %s: cluster '%s' is not defined", cfile, ctxname, clname);
  json_t *cl = json_object_get(cle, "v");
  const char *clfile = json_string_value(json_object_get(cle, "file"));
  const char *cldir = json_string_value(json_object_get(cle, "dir"));
  char what[300];
  snprintf(what, sizeof what, "cluster %s", clname);

  size_t slen = strlen(cfile) + strlen(ctxname) + 32;
  if (!(c->source = malloc(slen))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  snprintf(c->source, slen, "%s, context %s", cfile, ctxname);

  const char *server = opts && opts->server ? opts->server : json_string_value(json_object_get(cl, "server"));
  if ((rc = set_server(c, server, opts && opts->server ? "--server" : clfile, what))) return rc;
  c->insecure = json_is_true(json_object_get(cl, "insecure-skip-tls-verify"));
  if ((rc = dupstr(&c->tls_server_name, json_string_value(json_object_get(cl, "tls-server-name")))) ||
      (rc = dupstr(&c->proxy_url, json_string_value(json_object_get(cl, "proxy-url")))))
    return rc;
  if ((rc = load_blob(cl, cldir, what, clfile, "certificate-authority", inline_only, &c->ca_pem, &c->ca_pem_len))) return rc;

  if (uname && uname[0]) {
    json_t *ue = json_object_get(m->users, uname);
    if (!ue) return kd_fail(KD_ERR_CONFIG, "%s: context %s: user '%s' is not defined", cfile, ctxname, uname);
    json_t *u = json_object_get(ue, "v");
    const char *ufile = json_string_value(json_object_get(ue, "file"));
    const char *udir = json_string_value(json_object_get(ue, "dir"));
    snprintf(what, sizeof what, "user %s", uname);
    if ((rc = load_blob(u, udir, what, ufile, "client-certificate", inline_only, &c->cert_pem, &c->cert_pem_len)) ||
        (rc = load_blob(u, udir, what, ufile, "client-key", inline_only, &c->key_pem, &c->key_pem_len)))
      return rc;
    if (!c->cert_pem != !c->key_pem)
      return kd_fail(KD_ERR_CONFIG, "%s: %s: client-certificate and client-key must be given together", ufile, what);
    if ((rc = dupstr(&c->token, json_string_value(json_object_get(u, "token")))) ||
        (rc = dupstr(&c->username, json_string_value(json_object_get(u, "username")))) ||
        (rc = dupstr(&c->password, json_string_value(json_object_get(u, "password")))))
      return rc;
    const char *tf = json_string_value(json_object_get(u, "tokenFile"));
    if (tf && tf[0] && !(c->token_file = resolve_path(udir, tf))) return kd_fail(KD_ERR_NOMEM, "out of memory");
    json_t *ex = json_object_get(u, "exec");
    if (ex && json_is_object(ex) && (rc = parse_exec(ex, ufile, uname, &c->exec))) return rc;
    if (json_object_get(u, "auth-provider"))
      return kd_fail(KD_ERR_CONFIG, "%s: %s: auth-provider plugins were removed from Kubernetes; use exec", ufile, what);
  }
  const char *ns = opts && opts->namespace ? opts->namespace : json_string_value(json_object_get(ctx, "namespace"));
  if ((rc = dupstr(&c->namespace, ns && ns[0] ? ns : "default"))) return rc;
  return kubecfg_check(c);
}

static kd_rc load_docs(json_t **docs, const char *const *names, const char *const *dirs, size_t n,
                       const struct kubecfg_opts *opts, bool inline_only, struct kubecfg **out) {
  kd_rc rc = KD_OK;
  struct merged m = {json_object(), json_object(), json_object(), NULL, NULL};
  struct kubecfg *c = calloc(1, sizeof *c);
  if (!c || !m.clusters || !m.users || !m.contexts) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    if (!json_is_object(docs[i])) {
      rc = kd_fail(KD_ERR_CONFIG, "%s: not a kubeconfig (the top level must be a mapping)", names[i]);
      goto fail;
    }
    const char *kind = json_string_value(json_object_get(docs[i], "kind"));
    if (kind && strcmp(kind, "Config") != 0) {
      rc = kd_fail(KD_ERR_CONFIG, "%s: kind is '%s', expected Config", names[i], kind);
      goto fail;
    }
    if ((rc = merge_section(docs[i], "clusters", "cluster", m.clusters, names[i], dirs[i])) ||
        (rc = merge_section(docs[i], "users", "user", m.users, names[i], dirs[i])) ||
        (rc = merge_section(docs[i], "contexts", "context", m.contexts, names[i], dirs[i])))
      goto fail;
    const char *cc = json_string_value(json_object_get(docs[i], "current-context"));
    if (!m.current_context && cc && cc[0]) {
      m.current_context = cc;
      m.current_file = names[i];
    }
    if (!m.current_file) m.current_file = names[i];
  }
  if ((rc = resolve(&m, opts, inline_only, c))) goto fail;
  *out = c;
  c = NULL;
fail:
  kubecfg_free(c);
  json_decref(m.clusters);
  json_decref(m.users);
  json_decref(m.contexts);
  return rc;
}

kd_rc kubecfg_load_texts(const char *const *texts, const char *const *names, const char *const *base_dirs,
                         size_t n, const struct kubecfg_opts *opts, struct kubecfg **out) {
  kd_rc rc = KD_OK;
  json_t *docs[MAX_FILES] = {0};
  size_t i = 0;
  if (n > MAX_FILES) return kd_fail(KD_ERR_CONFIG, "more than %d kubeconfig files", MAX_FILES);
  for (i = 0; i < n; i++) {
    if ((rc = yj_parse_one(texts[i], strlen(texts[i]), &docs[i])) != KD_OK) {
      rc = kd_fail_wrap(KD_ERR_CONFIG, "%s", names[i]);
      goto fail;
    }
  }
  rc = load_docs(docs, names, base_dirs, n, opts, false, out);
fail:
  for (size_t k = 0; k < n; k++) json_decref(docs[k]);
  return rc;
}

kd_rc kubecfg_load_inline(const char *text, const char *name, struct kubecfg **out) {
  json_t *doc = NULL;
  const char *names[1] = {name}, *dirs[1] = {"/"};
  if (yj_parse_one(text, strlen(text), &doc) != KD_OK) return kd_fail_wrap(KD_ERR_CONFIG, "%s", name);
  kd_rc rc = load_docs(&doc, names, dirs, 1, NULL, true, out);
  json_decref(doc);
  return rc;
}

static kd_rc load_in_cluster(const struct kubecfg_opts *opts, struct kubecfg **out) {
  kd_rc rc = KD_OK;
  const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
  const char *dir = getenv("KCMDR_SERVICEACCOUNT_DIR");
  char path[4096];
  if (!dir) dir = SA_DIR_DEFAULT;
  struct kubecfg *c = calloc(1, sizeof *c);
  if (!c) return kd_fail(KD_ERR_NOMEM, "out of memory");
  c->in_cluster = true;
  if (!(c->source = strdup("in-cluster service account"))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  if (opts && opts->server) {
    if ((rc = set_server(c, opts->server, "--server", "in-cluster"))) goto fail;
  } else {
    kd_buf b = KD_BUF_INIT(8192);
    if (strchr(host, ':')) rc = kd_buf_addf(&b, "https://[%s]:%s", host, port ? port : "443");
    else rc = kd_buf_addf(&b, "https://%s:%s", host, port ? port : "443");
    if (rc == KD_OK && !(c->server = kd_buf_steal(&b))) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    kd_buf_free(&b);
    if (rc) {
      rc = kd_fail(KD_ERR_CONFIG, "in-cluster: KUBERNETES_SERVICE_HOST/PORT are too long");
      goto fail;
    }
  }
  snprintf(path, sizeof path, "%s/token", dir);
  if (access(path, R_OK) != 0) {
    rc = kd_fail(KD_ERR_CONFIG, "in-cluster: cannot read the service-account token %s", path);
    goto fail;
  }
  if ((rc = dupstr(&c->token_file, path))) goto fail;
  snprintf(path, sizeof path, "%s/ca.crt", dir);
  if ((rc = kd_read_file(path, KUBECFG_MAX_FILE, &c->ca_pem, &c->ca_pem_len)) != KD_OK) {
    rc = kd_fail(KD_ERR_CONFIG, "in-cluster: %s", kd_errmsg());
    goto fail;
  }
  char *ns = NULL;
  snprintf(path, sizeof path, "%s/namespace", dir);
  if (opts && opts->namespace) {
    rc = dupstr(&c->namespace, opts->namespace);
  } else if (kd_read_file(path, 4096, &ns, NULL) == KD_OK) {
    ns[strcspn(ns, " \r\n")] = '\0';
    c->namespace = ns;
  } else {
    rc = dupstr(&c->namespace, "default");
  }
  if (rc || (rc = kubecfg_check(c))) goto fail;
  *out = c;
  return KD_OK;
fail:
  kubecfg_free(c);
  return rc;
}

/* Split $KUBECONFIG on ':' into existing files. */
static kd_rc env_files(const char *env, char **files, size_t *n) {
  *n = 0;
  const char *p = env;
  while (*p) {
    const char *e = strchr(p, ':');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 0) {
      if (*n >= MAX_FILES) return kd_fail(KD_ERR_CONFIG, "KUBECONFIG lists more than %d files", MAX_FILES);
      char *f = strndup(p, len);
      if (!f) return kd_fail(KD_ERR_NOMEM, "out of memory");
      bool dup = false;
      for (size_t i = 0; i < *n; i++) dup = dup || strcmp(files[i], f) == 0;
      if (dup || access(f, F_OK) != 0) free(f); /* kubectl skips missing files */
      else files[(*n)++] = f;
    }
    p += len;
    if (*p == ':') p++;
  }
  return KD_OK;
}

kd_rc kubecfg_load(const struct kubecfg_opts *opts, struct kubecfg **out) {
  kd_rc rc = KD_OK;
  char *files[MAX_FILES] = {0}, *texts[MAX_FILES] = {0}, *dirs[MAX_FILES] = {0};
  size_t n = 0;
  const char *env = getenv("KUBECONFIG");
  *out = NULL;
  if (opts && opts->kubeconfig) {
    if (!(files[0] = strdup(opts->kubeconfig))) return kd_fail(KD_ERR_NOMEM, "out of memory");
    n = 1;
  } else if (env && env[0]) {
    if ((rc = env_files(env, files, &n))) goto fail;
    if (n == 0) {
      rc = kd_fail(KD_ERR_CONFIG, "none of the files in KUBECONFIG (%s) exists", env);
      goto fail;
    }
  } else {
    const char *home = getenv("HOME");
    char path[4096];
    snprintf(path, sizeof path, "%s/.kube/config", home ? home : "");
    if (home && access(path, F_OK) == 0) {
      if (!(files[0] = strdup(path))) return kd_fail(KD_ERR_NOMEM, "out of memory");
      n = 1;
    } else if (getenv("KUBERNETES_SERVICE_HOST")) {
      return load_in_cluster(opts, out);
    } else {
      return kd_fail(KD_ERR_CONFIG, "no kubeconfig: set --kubeconfig or KUBECONFIG, create ~/.kube/config, "
                                    "or run in a cluster");
    }
  }
  for (size_t i = 0; i < n; i++) {
    if ((rc = kd_read_file(files[i], KUBECFG_MAX_FILE, &texts[i], NULL)) != KD_OK) {
      rc = kd_fail(KD_ERR_CONFIG, "kubeconfig: %s", kd_errmsg());
      goto fail;
    }
    char *slash = strrchr(files[i], '/');
    dirs[i] = slash ? strndup(files[i], (size_t)(slash - files[i])) : strdup(".");
    if (!dirs[i]) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
  }
  rc = kubecfg_load_texts((const char *const *)texts, (const char *const *)files, (const char *const *)dirs, n,
                          opts, out);
fail:
  for (size_t i = 0; i < n; i++) {
    free(files[i]);
    free(texts[i]);
    free(dirs[i]);
  }
  return rc;
}
