/**
 * A database's schema as normalised catalog queries, for comparing two
 * databases built by different migrations (tests/database/baseline_test.ts):
 * schemas, relations (kind, row level security, options, partitions and
 * their bounds), columns, constraints, indexes, policies, triggers,
 * functions (definitions with their comments stripped and white space
 * folded), types, sequences, publications, default privileges, comments,
 * security labels, extensions, event triggers, rules, pg_cron jobs when
 * pg_cron is there, and the rows of every table. Every grant (schema,
 * table, column, sequence, function, type) is compared as a sorted list of
 * `grantee=privilege/grantor`, so that neither the order of the grants nor
 * a default ACL written out changes the result.
 *
 * @module
 */
import type { Sql, TransactionSql } from "postgres";

/** A connection or a transaction. */
type Query = Sql | TransactionSql;

/** Section name -> object key -> normalised description. */
export type Catalog = Map<string, Map<string, string>>;

/** One object that differs: `old`/`new` are undefined where the object is missing. */
export interface Difference {
  section: string;
  key: string;
  old: string | undefined;
  new: string | undefined;
}

/** Schemas of the database's own objects (not PostgreSQL's). */
const USER_SCHEMA = `n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'`;

/** Not an object an extension created (pg_cron's tables and functions, say). */
function notExtensionMember(classTable: string, oid: string): string {
  return `not exists (select 1 from pg_depend e where e.classid = '${classTable}'::regclass and e.objid = ${oid}
    and e.deptype = 'e')`;
}

/** An ACL as a sorted jsonb array of `grantee=privilege/grantor` (`*`: with grant option); null ACLs as their default. */
function acl(column: string, kind: string, owner: string): string {
  // kind: acldefault's object type, a SQL expression of type "char".
  return `(select coalesce(jsonb_agg(x order by x), '[]') from (
      select format('%s=%s%s/%s', case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end,
        a.privilege_type, case when a.is_grantable then '*' else '' end, pg_get_userbyid(a.grantor)) as x
      from aclexplode(coalesce(${column}, acldefault(${kind}, ${owner}))) a
    ) acl)`;
}

/** Queries whose rows are `{key, value}`, one per object. */
const SECTIONS: Record<string, string> = {
  schemas: `select n.nspname as key, jsonb_build_object('owner', pg_get_userbyid(n.nspowner),
      'acl', ${acl("n.nspacl", "'n'", "n.nspowner")}) as value
    from pg_namespace n where ${USER_SCHEMA}`,

  relations: `select c.oid::regclass::text as key, jsonb_build_object('kind', c.relkind,
      'persistence', c.relpersistence, 'rls', c.relrowsecurity, 'force_rls', c.relforcerowsecurity,
      'options', c.reloptions, 'replica_identity', c.relreplident, 'owner', pg_get_userbyid(c.relowner),
      'partition_of', (select i.inhparent::regclass::text from pg_inherits i where i.inhrelid = c.oid),
      'bound', pg_get_expr(c.relpartbound, c.oid),
      'partition_key', case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end,
      'view', case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end,
      'acl', ${acl("c.relacl", `(case when c.relkind = 'S' then 's' else 'r' end)::"char"`, "c.relowner")}) as value
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and ${USER_SCHEMA}
      and ${notExtensionMember("pg_class", "c.oid")}`,

  columns: `select c.oid::regclass::text || '.' || quote_ident(a.attname) as key, jsonb_build_object(
      'position', row_number() over (partition by c.oid order by a.attnum),
      'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
      'default', pg_get_expr(d.adbin, d.adrelid), 'identity', a.attidentity, 'generated', a.attgenerated,
      'collation', (select co.collname from pg_collation co where co.oid = a.attcollation),
      'storage', a.attstorage, 'statistics', a.attstattarget, 'options', a.attoptions,
      'acl', (select coalesce(jsonb_agg(x order by x), '[]') from (
        select format('%s=%s/%s', case when x.grantee = 0 then 'PUBLIC' else pg_get_userbyid(x.grantee) end,
          x.privilege_type, pg_get_userbyid(x.grantor)) as x
        from aclexplode(a.attacl) x) acl)) as value
    from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f') and ${USER_SCHEMA}
      and ${notExtensionMember("pg_class", "c.oid")}`,

  constraints: `select coalesce(r.oid::regclass::text, t.oid::regtype::text) || '.' || quote_ident(k.conname) as key,
      jsonb_build_object('type', k.contype, 'definition', pg_get_constraintdef(k.oid),
        'validated', k.convalidated, 'no_inherit', k.connoinherit) as value
    from pg_constraint k join pg_namespace n on n.oid = k.connamespace
    left join pg_class r on r.oid = k.conrelid left join pg_type t on t.oid = k.contypid
    where ${USER_SCHEMA} and (r.oid is null or ${notExtensionMember("pg_class", "r.oid")})`,

  indexes: `select x.indexrelid::regclass::text as key, jsonb_build_object('definition', pg_get_indexdef(x.indexrelid),
      'clustered', x.indisclustered, 'replica_identity', x.indisreplident,
      'partition_of', (select i.inhparent::regclass::text from pg_inherits i where i.inhrelid = x.indexrelid)) as value
    from pg_index x join pg_class c on c.oid = x.indexrelid join pg_namespace n on n.oid = c.relnamespace
    where ${USER_SCHEMA} and ${notExtensionMember("pg_class", "x.indrelid")}`,

  policies: `select format('%I.%I.%I', p.schemaname, p.tablename, p.policyname) as key, jsonb_build_object(
      'permissive', p.permissive, 'roles', (select jsonb_agg(r order by r) from unnest(p.roles) r), 'command', p.cmd,
      'using', p.qual, 'with_check', p.with_check) as value
    from pg_policies p`,

  triggers: `select t.tgrelid::regclass::text || '.' || quote_ident(t.tgname) as key,
      jsonb_build_object('definition', pg_get_triggerdef(t.oid), 'enabled', t.tgenabled) as value
    from pg_trigger t where not t.tgisinternal`,

  functions: `select p.oid::regprocedure::text as key, jsonb_build_object('kind', p.prokind,
      'definition', case when p.prokind in ('f', 'p') then pg_get_functiondef(p.oid) end,
      'source', p.prosrc, 'owner', pg_get_userbyid(p.proowner), 'acl', ${acl("p.proacl", "'f'", "p.proowner")}) as value
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where ${USER_SCHEMA} and ${notExtensionMember("pg_proc", "p.oid")}`,

  types:
    `select t.oid::regtype::text as key, jsonb_build_object('type', t.typtype, 'owner', pg_get_userbyid(t.typowner),
      'attributes', (select jsonb_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) order by a.attnum)
        from pg_attribute a where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped),
      'labels', (select jsonb_agg(e.enumlabel order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid),
      'base', case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) end,
      'not_null', t.typnotnull, 'default', t.typdefault, 'acl', ${acl("t.typacl", "'T'", "t.typowner")}) as value
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where ${USER_SCHEMA} and t.typelem = 0 and t.typtype in ('c', 'd', 'e', 'r', 'm', 'b')
      and (t.typrelid = 0 or (select c.relkind from pg_class c where c.oid = t.typrelid) = 'c')
      and ${notExtensionMember("pg_type", "t.oid")}`,

  sequences: `select s.seqrelid::regclass::text as key, jsonb_build_object('type', format_type(s.seqtypid, null),
      'start', s.seqstart, 'increment', s.seqincrement, 'min', s.seqmin, 'max', s.seqmax, 'cache', s.seqcache,
      'cycle', s.seqcycle, 'last_value', q.last_value,
      'owned_by', (select d.refobjid::regclass::text || '.' || a.attname from pg_depend d
        join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
        where d.classid = 'pg_class'::regclass and d.objid = s.seqrelid and d.deptype in ('a', 'i'))) as value
    from pg_sequence s join pg_class c on c.oid = s.seqrelid join pg_namespace n on n.oid = c.relnamespace
    join pg_sequences q on q.schemaname = n.nspname and q.sequencename = c.relname
    where ${USER_SCHEMA} and ${notExtensionMember("pg_class", "c.oid")}`,

  publications: `select p.pubname as key, jsonb_build_object('all_tables', p.puballtables, 'insert', p.pubinsert,
      'update', p.pubupdate, 'delete', p.pubdelete, 'truncate', p.pubtruncate, 'via_root', p.pubviaroot,
      'owner', pg_get_userbyid(p.pubowner)) as value
    from pg_publication p`,

  publication_tables: `select format('%s %I.%I', t.pubname, t.schemaname, t.tablename) as key,
      to_jsonb(t) - 'pubname' - 'schemaname' - 'tablename' as value
    from pg_publication_tables t`,

  default_privileges: `select format('%s %s %s', pg_get_userbyid(d.defaclrole),
      coalesce((select n.nspname from pg_namespace n where n.oid = d.defaclnamespace), '(every schema)'),
      d.defaclobjtype) as key, ${acl("d.defaclacl", "'f'", "d.defaclrole")} as value
    from pg_default_acl d`,

  comments: `select pg_describe_object(d.classoid, d.objoid, d.objsubid) as key, to_jsonb(d.description) as value
    from pg_description d where d.objoid >= 16384`,

  security_labels: `select format('%s %s %s', l.objtype, l.objname, l.provider) as key, to_jsonb(l.label) as value
    from pg_seclabels l where l.objoid >= 16384`,

  extensions: `select e.extname as key, jsonb_build_object('version', e.extversion,
      'schema', e.extnamespace::regnamespace::text) as value
    from pg_extension e`,

  event_triggers:
    `select e.evtname as key, jsonb_build_object('event', e.evtevent, 'function', e.evtfoid::regproc::text,
      'enabled', e.evtenabled, 'tags', e.evttags) as value
    from pg_event_trigger e`,

  rules: `select format('%I.%I.%I', r.schemaname, r.tablename, r.rulename) as key, to_jsonb(r.definition) as value
    from pg_rules r where r.schemaname not in ('pg_catalog', 'information_schema')`,
};

/**
 * Reads `sql`'s catalog. `rows: false` leaves out the rows of the tables (they change when pg_cron has run jobs).
 * Function definitions are compared without their `--` and block comments, with white space folded.
 */
export async function readCatalog(sql: Sql, options: { rows?: boolean } = {}): Promise<Catalog> {
  return await sql.begin(async (tx) => {
    // Names qualified with their schema whatever the search_path would make visible.
    await tx.unsafe("set local search_path to pg_catalog");
    const catalog: Catalog = new Map();
    for (const [section, query] of Object.entries(SECTIONS)) {
      const rows = await tx.unsafe<{ key: string; value: Record<string, unknown> | string }[]>(query);
      catalog.set(section, new Map(rows.map((r) => [r.key, describe(section, r.value)])));
    }
    catalog.set("cron_jobs", new Map((await cronJobs(tx)).map((job) => [String(job.jobname), JSON.stringify(job)])));
    if (options.rows !== false) catalog.set("rows", await tableRows(tx));
    return catalog;
  });
}

/** pg_cron's jobs (none when pg_cron is not installed), with this database's name written as `<this database>`. */
export async function cronJobs(sql: Query): Promise<Record<string, unknown>[]> {
  const [cron] = await sql`select to_regclass('cron.job') is not null as installed`;
  if (!cron!.installed) return [];
  return [
    ...await sql`select jobid::int, jobname, schedule, command, username, active,
      case when database = current_database() then '<this database>' else database end as database
    from cron.job order by jobid`,
  ];
}

/** Every table's rows (partitions through their table), as sorted JSON; not the migrations' own bookkeeping. */
async function tableRows(sql: Query): Promise<Map<string, string>> {
  const tables = await sql.unsafe<{ name: string }[]>(`
    select c.oid::regclass::text as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and not c.relispartition and n.nspname not in ('supabase_migrations', 'cron')
      and ${USER_SCHEMA} and ${notExtensionMember("pg_class", "c.oid")}`);
  const rows = new Map<string, string>();
  for (const { name } of tables) {
    const [result] = await sql.unsafe<{ rows: unknown }[]>(
      `select coalesce(jsonb_agg(to_jsonb(t) order by to_jsonb(t)::text), '[]') as rows from ${name} t`,
    );
    rows.set(name, JSON.stringify(result!.rows));
  }
  return rows;
}

function describe(section: string, value: Record<string, unknown> | string): string {
  if (section !== "functions" || typeof value === "string") return JSON.stringify(value);
  // The definition without its body (kept verbatim in it), then the body without comments.
  const { definition, source, ...rest } = value as { definition: string | null; source: string };
  const header = definition === null ? null : foldWhiteSpace(definition.replace(source, ""));
  return JSON.stringify({ ...rest, header, body: foldWhiteSpace(stripComments(source)) });
}

function foldWhiteSpace(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/** `text` (SQL or PL/pgSQL) without its `--` and `/* *\/` comments; string literals, quoted names and dollar quotes kept. */
export function stripComments(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    const dollar = rest.match(/^\$[A-Za-z_]*\$/);
    if (rest.startsWith("--")) {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end;
    } else if (rest.startsWith("/*")) {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
      out += " ";
    } else if (text[i] === "'" || text[i] === '"') {
      const quote = text[i]!;
      let end = i + 1;
      while (end < text.length && !(text[end] === quote && text[end + 1] !== quote)) {
        end += text[end] === quote ? 2 : 1;
      }
      out += text.slice(i, end + 1);
      i = end + 1;
    } else if (dollar) {
      const end = text.indexOf(dollar[0], i + dollar[0].length);
      const stop = end < 0 ? text.length : end + dollar[0].length;
      out += text.slice(i, stop);
      i = stop;
    } else {
      out += text[i];
      i++;
    }
  }
  return out;
}

/** The objects that differ between `old` and `new`, section by section. */
export function diffCatalogs(old: Catalog, next: Catalog): Difference[] {
  const differences: Difference[] = [];
  for (const section of new Set([...old.keys(), ...next.keys()])) {
    const a = old.get(section) ?? new Map<string, string>();
    const b = next.get(section) ?? new Map<string, string>();
    for (const key of [...new Set([...a.keys(), ...b.keys()])].sort()) {
      if (a.get(key) !== b.get(key)) differences.push({ section, key, old: a.get(key), new: b.get(key) });
    }
  }
  return differences;
}

/** The first `max` differences, readable: what is missing where, or where two descriptions part. */
export function describeDifferences(differences: Difference[], max = 15): string {
  const lines = differences.slice(0, max).map((d) => {
    if (d.new === undefined) return `- ${d.section} ${d.key}: only in the old chain: ${clip(d.old!)}`;
    if (d.old === undefined) return `+ ${d.section} ${d.key}: only in the baseline: ${clip(d.new)}`;
    let at = 0;
    while (d.old[at] === d.new[at]) at++;
    const from = Math.max(0, at - 80);
    return `~ ${d.section} ${d.key}: differs at character ${at}\n    old: …${clip(d.old.slice(from))}\n` +
      `    new: …${clip(d.new.slice(from))}`;
  });
  const more = differences.length > max ? [`(${differences.length - max} more)`] : [];
  return [`${differences.length} differences between the old chain and the baseline:`, ...lines, ...more].join("\n");
}

function clip(text: string, length = 200): string {
  return text.length > length ? `${text.slice(0, length)}…` : text;
}
