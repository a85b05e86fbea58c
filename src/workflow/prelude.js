// boo's workflow prelude: runs once per run, before the script, in strict mode.
// It installs the script's globals on top of the native `host` functions and returns
// the internal functions the engine calls (settle, fire, toJson, describe).
// Everything that crosses to Rust is a string (JSON) or a number.
(function (host, itemsLimit) {
  "use strict";
  const G = globalThis;
  const limitOf = new WeakMap(); // Error -> limit name, for errors that end a run as a limit
  const pending = new Map(); // op id -> { resolve, reject, error } | { timer, args }

  const define = (obj, name, value) =>
    Object.defineProperty(obj, name, { value, writable: true, configurable: true, enumerable: false });

  function limitError(message, limit) {
    const e = new Error(message);
    limitOf.set(e, limit);
    return e;
  }

  function typeName(v) {
    if (v === null) return "null";
    if (Array.isArray(v)) return "an array";
    return typeof v;
  }

  // console / log formatting: strings as they are, errors as "Name: message",
  // everything else as JSON when it has a JSON form.
  function show(v) {
    if (typeof v === "string") return v;
    if (v instanceof Error) return v.name + ": " + v.message;
    if (v === undefined) return "undefined";
    if (typeof v === "function") return "[function " + (v.name || "anonymous") + "]";
    if (typeof v === "symbol") return v.toString();
    if (typeof v === "bigint") return v.toString() + "n";
    try {
      const s = JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));
      return s === undefined ? String(v) : s;
    } catch (_e) {
      return String(v);
    }
  }
  const showAll = (parts) => parts.map(show).join(" ");

  // ---- forbidden: they would make a re-executed script differ (resume) or hide code
  function forbidden(what, why) {
    return function () {
      throw new Error(what + " is not available in a workflow: " + why);
    };
  }
  const noEval = forbidden(
    "eval()",
    "code must be written in the script itself, where a run can be reviewed and resumed; write the code directly instead"
  );
  const noFunction = forbidden(
    "new Function() / Function()",
    "code must be written in the script itself; write a function expression (`(a, b) => …`) instead"
  );
  define(G, "eval", noEval);

  const RealFunction = Function;
  const FunctionStub = function Function() {
    return noFunction();
  };
  FunctionStub.prototype = RealFunction.prototype;
  define(G, "Function", FunctionStub);
  for (const proto of [
    RealFunction.prototype,
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function* () {}),
  ]) {
    define(proto, "constructor", FunctionStub);
  }

  const RealDate = Date;
  const noNow = forbidden(
    "Date.now()",
    "the current time would make a resumed run differ; pass a timestamp in `args` and use new Date(value)"
  );
  const SafeDate = function Date(...a) {
    if (new.target === undefined) {
      throw new Error(
        "Date() is not available in a workflow: called without `new` it returns the current time, which would make a resumed run differ; use new Date(value)"
      );
    }
    if (a.length === 0) {
      throw new Error(
        "new Date() without an argument is not available in a workflow: the current time would make a resumed run differ; pass a timestamp in `args` and use new Date(value)"
      );
    }
    return Reflect.construct(RealDate, a, new.target);
  };
  SafeDate.prototype = RealDate.prototype;
  define(RealDate.prototype, "constructor", SafeDate);
  define(SafeDate, "UTC", RealDate.UTC);
  define(SafeDate, "parse", RealDate.parse);
  define(SafeDate, "now", noNow);
  define(G, "Date", SafeDate);

  define(
    Math,
    "random",
    forbidden(
      "Math.random()",
      "random numbers would make a resumed run differ; derive variation from `args` or an item's index instead"
    )
  );
  const noPerfNow = forbidden(
    "performance.now()",
    "the current time would make a resumed run differ; count agent calls or items instead of measuring time"
  );
  define(G, "performance", Object.freeze({ now: noPerfNow }));

  // ---- console, log, phase
  const consoleObj = {};
  for (const level of ["log", "info", "debug", "warn", "error"]) {
    define(consoleObj, level, function (...parts) {
      host.log("console." + level, showAll(parts));
    });
  }
  define(G, "console", consoleObj);
  define(G, "log", function log(...parts) {
    host.log("log", showAll(parts));
  });
  define(G, "phase", function phase(title) {
    if (typeof title !== "string" || title.trim() === "") {
      throw new TypeError("phase(title): title must be a non-empty string, got " + typeName(title));
    }
    host.phase(title);
  });

  // ---- timers: real delays on the engine's async side
  define(G, "setTimeout", function setTimeout(fn, ms, ...args) {
    if (typeof fn !== "function") {
      throw new TypeError("setTimeout(fn, ms): fn must be a function (strings of code are not run)");
    }
    const id = host.timer(Number(ms) || 0);
    pending.set(id, { timer: fn, args });
    return id;
  });
  define(G, "clearTimeout", function clearTimeout(id) {
    const entry = pending.get(id);
    if (entry && entry.timer) {
      pending.delete(id);
      host.clearTimer(id);
    }
  });

  // ---- budget
  const readBudget = () => JSON.parse(host.budget());
  const total = readBudget().total;
  define(
    G,
    "budget",
    Object.freeze({
      total,
      spent() {
        return readBudget().spent;
      },
      remaining() {
        const b = readBudget();
        return b.total === null ? Infinity : Math.max(0, b.total - b.spent);
      },
    })
  );

  // ---- agent
  // boo's extension: agent(prompt, { background: true }) returns an id at once and
  // result(id) collects the answer. Ids count up in call order, so a script executed
  // again after a restart hands out the same ids. An agent nobody collected is still
  // waited for before the run ends (see `drain`).
  const background = new Map(); // id -> { promise, collected }
  let backgroundCount = 0;
  function startAgent(prompt, opts) {
    // Created here so a later rejection points at the script line that called agent().
    const error = new Error("");
    let answer;
    try {
      if (typeof prompt !== "string") {
        throw new TypeError("agent(prompt, opts?): prompt must be a string, got " + typeName(prompt));
      }
      if (opts !== undefined && opts !== null && (typeof opts !== "object" || Array.isArray(opts))) {
        throw new TypeError("agent(prompt, opts?): opts must be an object, got " + typeName(opts));
      }
      let optsJson;
      try {
        optsJson = opts == null ? "{}" : JSON.stringify(opts);
      } catch (e) {
        throw new TypeError("agent(prompt, opts?): opts must be plain JSON data (" + e.message + ")");
      }
      answer = JSON.parse(host.agent(prompt, optsJson));
    } catch (e) {
      return Promise.reject(e);
    }
    if (answer.error !== undefined) {
      const e = answer.type === "TypeError" ? new TypeError(answer.error) : error;
      e.message = answer.error;
      if (answer.limit) limitOf.set(e, answer.limit);
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      pending.set(answer.id, { resolve, reject, error });
    });
  }
  define(G, "agent", function agent(prompt, opts) {
    if (opts !== null && typeof opts === "object" && !Array.isArray(opts) && opts.background !== undefined) {
      if (typeof opts.background !== "boolean") {
        throw new TypeError("agent(prompt, opts?): opts.background must be a boolean, got " + typeName(opts.background));
      }
      // `background` is how the caller waits, not what the agent does: it is not
      // part of the call (nor of its cache key).
      const rest = Object.assign({}, opts);
      delete rest.background;
      if (opts.background) {
        backgroundCount += 1;
        const id = "agent-" + backgroundCount;
        const promise = startAgent(prompt, rest);
        // Never an unhandled rejection: result(id) hands the rejection on.
        promise.catch(() => {});
        background.set(id, { promise, collected: false });
        return id;
      }
      return startAgent(prompt, rest);
    }
    return startAgent(prompt, opts);
  });
  define(G, "result", function result(id) {
    const entry = typeof id === "string" ? background.get(id) : undefined;
    if (entry === undefined) {
      return Promise.reject(
        new TypeError(
          "result(id): " + show(id) + " is not the id of a background agent of this script; pass the id that agent(prompt, { background: true }) returned"
        )
      );
    }
    entry.collected = true;
    return entry.promise;
  });

  // ---- parallel and pipeline
  const commas = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

  function listOf(fn, what, items) {
    let list;
    if (Array.isArray(items)) {
      list = items;
    } else if (items != null && typeof items[Symbol.iterator] === "function") {
      list = Array.from(items);
    } else {
      throw new TypeError(what + " must be an array, got " + typeName(items));
    }
    if (list.length > itemsLimit) {
      throw limitError(
        fn + "(): " + commas(list.length) + " items is more than the limit of " + commas(itemsLimit) +
          " items per call; split the work into smaller calls",
        "items"
      );
    }
    return list;
  }

  define(G, "parallel", async function parallel(thunks) {
    const list = listOf("parallel", "parallel(thunks): thunks", thunks);
    // A barrier: every thunk starts now; a thunk that throws (or rejects) becomes null.
    return Promise.all(
      list.map(async (t) => {
        try {
          return await (typeof t === "function" ? t() : t);
        } catch (_e) {
          return null;
        }
      })
    );
  });

  define(G, "pipeline", async function pipeline(items, ...stages) {
    const list = listOf("pipeline", "pipeline(items, ...stages): items", items);
    stages.forEach((s, i) => {
      if (typeof s !== "function") {
        throw new TypeError("pipeline(items, ...stages): stage " + (i + 1) + " must be a function, got " + typeName(s));
      }
    });
    // No barrier between stages: each item moves on as soon as its own stage ends.
    return Promise.all(
      list.map(async (item, index) => {
        let previous = item;
        for (const stage of stages) {
          try {
            previous = await stage(previous, item, index);
          } catch (_e) {
            return null; // this item is dropped; its later stages do not run
          }
        }
        return previous;
      })
    );
  });

  // ---- workflow(): one level of nesting
  const nestedWorkflow = function workflow() {
    return Promise.reject(
      new Error(
        "workflow() cannot be called from a workflow that was itself started by workflow(): one level of nesting is allowed; call both workflows from the top-level script instead"
      )
    );
  };
  const topWorkflow = async function workflow(nameOrRef, args) {
    if (typeof nameOrRef !== "string" || nameOrRef.trim() === "") {
      throw new TypeError("workflow(nameOrRef, args?): nameOrRef must be a non-empty string, got " + typeName(nameOrRef));
    }
    const body = host.load(nameOrRef);
    return await body(args, nestedWorkflow);
  };

  // ---- the engine's side
  return {
    workflow: topWorkflow,
    // After the script returned: a promise that settles once every background agent
    // nobody collected has ended (null when there is none), so each lands in the run.
    drain() {
      const left = [];
      for (const entry of background.values()) {
        if (!entry.collected) left.push(entry.promise.catch(() => null));
      }
      return left.length === 0 ? null : Promise.all(left);
    },
    settle(id, ok, payload) {
      const entry = pending.get(id);
      if (entry === undefined || entry.timer) return;
      pending.delete(id);
      if (ok) {
        entry.resolve(JSON.parse(payload));
      } else {
        const p = JSON.parse(payload);
        entry.error.message = p.message;
        if (p.limit) limitOf.set(entry.error, p.limit);
        entry.reject(entry.error);
      }
    },
    fire(id) {
      const entry = pending.get(id);
      if (entry === undefined || !entry.timer) return;
      pending.delete(id);
      entry.timer(...entry.args);
    },
    toJson(value) {
      const s = JSON.stringify(value, (_k, x) => (typeof x === "bigint" ? x.toString() : x));
      return s === undefined ? "null" : s;
    },
    describe(e) {
      if (e instanceof Error || (e !== null && typeof e === "object" && typeof e.stack === "string")) {
        let name = "Error";
        let message = "";
        let stack = "";
        try { name = String(e.name); } catch (_x) {}
        try { message = String(e.message); } catch (_x) {}
        try { stack = String(e.stack); } catch (_x) {}
        return JSON.stringify({ error: true, name, message, stack, limit: limitOf.get(e) || null });
      }
      return JSON.stringify({ error: false, message: show(e) });
    },
  };
});
