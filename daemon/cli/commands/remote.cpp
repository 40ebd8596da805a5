// kiln remote add|list|remove|repin, and kiln remote token create|list|revoke (on the daemon's machine).
#include <unistd.h>

#include <iomanip>
#include <iostream>

#include "cli/commands/commands.h"
#include "cli/output.h"
#include "client/remotes.h"
#include "ipc/paths.h"
#include "protocol/methods.h"
#include "protocol/version.h"

namespace kiln::cli {

namespace {
std::string masked(const std::string& token) { return token.size() > 9 ? token.substr(0, 9) + "…" : "(none)"; }

// A client for a remote given by address and token, with the pinning rules of first contact.
std::unique_ptr<Client> contact(const RemoteAddress& address, const std::string& token, const std::string& fingerprint) {
  ClientOptions options;
  options.remote = address.url();
  options.token = token;
  options.expect_fingerprint = fingerprint;
  options.client_name = std::string("kiln-cli ") + protocol::kKilnVersion;
  options.autostart = false;
  auto client = std::make_unique<Client>(options);
  client->connect();
  return client;
}

// Token management talks to the daemon of this machine; a remote one would refuse it anyway.
std::unique_ptr<Client> local_daemon(const GlobalOptions& global) {
  if (!global.remote.empty())
    throw CLI::ValidationError("--remote", "tokens are managed on the daemon's own machine: run this there, without --remote");
  const GlobalOptions& local = global;
  ClientOptions options;  // an explicit socket: $KILN_REMOTE does not apply here
  options.socket_path = local.socket.empty() ? ipc::default_socket_path().string() : local.socket;
  options.data_dir = local.data_dir;
  options.client_name = std::string("kiln-cli ") + protocol::kKilnVersion;
  options.autostart = !local.no_autostart;
  auto client = std::make_unique<Client>(options);
  client->connect();
  return client;
}

std::string this_host() {
  char host[256] = "";
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) return "THIS-MACHINE";
  return host;
}

// The address a laptop should use: the listener's, with a wildcard replaced by this host's name.
std::string pairing_address(const Json& listener) {
  std::string address = listener.value("address", "");
  for (const char* any : {"0.0.0.0:", "[::]:"})
    if (address.rfind(any, 0) == 0) address = this_host() + ":" + address.substr(std::string(any).size());
  return address;
}
}  // namespace

void add_remote_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto* remote = app.add_subcommand("remote", "use a kilnd on another machine: saved remotes, pinned certificates, tokens");
  remote->require_subcommand(1);

  // add
  {
    auto* cmd = remote->add_subcommand("add", "save a remote daemon and pin its certificate on first contact");
    auto name = std::make_shared<std::string>();
    auto address = std::make_shared<std::string>();
    auto token = std::make_shared<std::string>();
    auto fingerprint = std::make_shared<std::string>();
    auto no_check = std::make_shared<bool>(false);
    cmd->add_option("name", *name, "a name for it, e.g. gpu")->required();
    cmd->add_option("address", *address, "HOST:PORT of kilnd --listen")->required();
    cmd->add_option("--token", *token, "the token from `kiln remote token create` on the daemon's machine ('-': read it from stdin)")
        ->required();
    cmd->add_option("--fingerprint", *fingerprint,
                    "the certificate fingerprint the daemon must show (kiln remote token create prints it); without it the "
                    "first contact is trusted, as SSH does");
    cmd->add_flag("--no-check", *no_check, "save without contacting the daemon now (it is pinned on first contact)");
    cmd->callback([&result, name, address, token, fingerprint, no_check] {
      if (std::string problem = check_remote_name(*name); !problem.empty()) throw CLI::ValidationError("name", problem);
      RemoteAddress a;
      try {
        a = parse_remote_address(*address);
      } catch (const std::invalid_argument& e) {
        throw CLI::ValidationError("address", e.what());
      }
      if (*token == "-") std::getline(std::cin, *token);
      if (token->rfind("kiln_", 0) != 0)
        throw CLI::ValidationError("--token", "a Kiln token starts with kiln_ (make one with `kiln remote token create` on the daemon's machine)");
      RemoteConfig config;
      std::string pinned = "pinned on first contact";
      if (!*no_check) {
        auto client = contact(a, *token, *fingerprint);
        const Json& info = client->server_info();
        pinned = "certificate " + client->server_fingerprint() + " pinned";
        const Json access = info.value("remote", Json::object());
        std::cout << "kilnd " << info.value("version", "?") << " at " << a.str() << " (" << info.value("device", "?") << ") accepts token '"
                  << access.value("token", "?") << "' (" << (access.value("read_only", false) ? "read-only" : "full access") << ")\n";
      }
      config.save_remote(SavedRemote{*name, a, *token});
      std::cout << "saved remote '" << *name << "' = " << a.url() << " (" << pinned << "; token kept in "
                << (config.dir() / "remotes.json").string() << ", mode 600)\n"
                << "use it with `kiln --remote " << *name << " status`, or KILN_REMOTE=" << *name
                << " for every Kiln client (the Krita, Blender and Photoshop plugins too)\n";
      result.exit_code = kExitOk;
    });
  }

  // list
  {
    auto* cmd = remote->add_subcommand("list", "the saved remotes and their pinned certificates");
    auto json = std::make_shared<bool>(false);
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&result, json] {
      RemoteConfig config;
      Json out = Json::array();
      for (const SavedRemote& r : config.remotes())
        out.push_back({{"name", r.name}, {"address", r.address.str()}, {"token", masked(r.token)},
                       {"fingerprint", config.pinned(r.address).value_or("")}});
      if (*json) {
        print_json(out);
      } else if (out.empty()) {
        std::cout << "no saved remotes: `kiln remote add NAME HOST:PORT --token T` saves one\n";
      } else {
        for (const Json& r : out)
          std::cout << std::left << std::setw(16) << r["name"].get<std::string>() << std::setw(28) << r["address"].get<std::string>()
                    << "token " << r["token"].get<std::string>() << "\n  "
                    << (r["fingerprint"].get<std::string>().empty() ? "not pinned yet (pinned on first contact)"
                                                                    : r["fingerprint"].get<std::string>())
                    << "\n";
      }
      result.exit_code = kExitOk;
    });
  }

  // remove
  {
    auto* cmd = remote->add_subcommand("remove", "forget a saved remote (its token and its pinned certificate)");
    auto name = std::make_shared<std::string>();
    cmd->add_option("name", *name, "the remote's name")->required();
    cmd->callback([&result, name] {
      RemoteConfig config;
      const auto saved = config.find(*name);
      if (!saved) throw std::runtime_error("there is no saved remote called '" + *name + "' (`kiln remote list` shows them)");
      config.remove_remote(*name);
      if (!config.find_by_address(saved->address)) config.unpin(saved->address);
      std::cout << "forgot remote '" << *name << "' (" << saved->address.str() << ")\n";
      result.exit_code = kExitOk;
    });
  }

  // repin
  {
    auto* cmd = remote->add_subcommand("repin", "trust the certificate a remote shows now (after its certificate was replaced)");
    auto which = std::make_shared<std::string>();
    auto fingerprint = std::make_shared<std::string>();
    cmd->add_option("remote", *which, "a saved remote's name, or HOST:PORT")->required();
    cmd->add_option("--fingerprint", *fingerprint, "the fingerprint it must show (compare with `kiln remote token list` on the daemon's machine)");
    cmd->callback([&result, which, fingerprint] {
      RemoteConfig config;
      std::optional<SavedRemote> saved = config.find(*which);
      RemoteAddress address;
      std::string token;
      if (saved) {
        address = saved->address;
        token = saved->token;
      } else {
        address = parse_remote_address(*which);
        if (auto byaddr = config.find_by_address(address)) token = byaddr->token;
        if (const char* env = std::getenv("KILN_TOKEN"); token.empty() && env) token = env;
      }
      const std::string old = config.pinned(address).value_or("(none)");
      config.unpin(address);
      try {
        auto client = contact(address, token, *fingerprint);
        std::cout << "re-pinned " << address.str() << ":\n  was: " << old << "\n  now: " << client->server_fingerprint() << "\n";
      } catch (...) {
        if (old != "(none)") config.pin(address, old);  // nothing trusted blindly on a failed contact
        throw;
      }
      result.exit_code = kExitOk;
    });
  }

  auto* token = remote->add_subcommand("token", "tokens for remote clients (run on the daemon's machine)");
  token->require_subcommand(1);

  // token create
  {
    auto* cmd = token->add_subcommand("create", "make a token for a laptop (shown once; kilnd keeps only its hash)");
    auto name = std::make_shared<std::string>();
    auto read_only = std::make_shared<bool>(false);
    auto json = std::make_shared<bool>(false);
    cmd->add_option("--name", *name, "a name to recognise it by, e.g. laptop-1");
    cmd->add_flag("--read-only", *read_only, "it may generate and read, not train, change, delete or shut down");
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, name, read_only, json] {
      auto client = local_daemon(global);
      Json params = Json::object();
      if (!name->empty()) params["name"] = *name;
      if (*read_only) params["read_only"] = true;
      const Json t = client->call(protocol::method::kRemoteTokensCreate, params);
      if (*json) {
        print_json(t);
      } else {
        const Json& l = t.at("listener");
        std::cout << "token '" << t.value("name", "") << "' (id " << t.value("id", "") << ", "
                  << (t.value("read_only", false) ? "read-only" : "full access") << "):\n\n  " << t.value("token", "")
                  << "\n\nIt is shown only now: kilnd keeps only its hash. On the laptop:\n\n  kiln remote add gpu "
                  << (l.value("listening", false) ? pairing_address(l) : "THIS-MACHINE:PORT") << " --token " << t.value("token", "");
        if (l.value("listening", false)) std::cout << " --fingerprint " << l.value("fingerprint", "");
        std::cout << "\n\n";
        if (!l.value("listening", false))
          std::cout << "kilnd is not listening for remote clients: start it with --listen HOST:PORT (e.g. 0.0.0.0:7433)\n";
      }
      result.exit_code = kExitOk;
    });
  }

  // token list
  {
    auto* cmd = token->add_subcommand("list", "the tokens (never the tokens themselves) and the certificate clients pin");
    auto json = std::make_shared<bool>(false);
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, json] {
      auto client = local_daemon(global);
      const Json answer = client->call(protocol::method::kRemoteTokensList);
      if (*json) {
        print_json(answer);
      } else {
        const Json& l = answer.at("listener");
        if (l.value("listening", false))
          std::cout << "listening on " << l.value("address", "") << ", certificate " << l.value("fingerprint", "") << "\n";
        else
          std::cout << "not listening for remote clients (kilnd --listen HOST:PORT)\n";
        if (answer.at("tokens").empty()) std::cout << "no tokens: `kiln remote token create --name laptop-1` makes one\n";
        for (const Json& t : answer.at("tokens"))
          std::cout << "  " << t.value("id", "") << "  " << std::left << std::setw(20) << t.value("name", "") << std::setw(12)
                    << (t.value("read_only", false) ? "read-only" : "full") << "created " << t.value("created_at", "")
                    << (t.at("last_used_at").is_string() ? ", last used " + t.at("last_used_at").get<std::string>() : ", never used")
                    << "\n";
      }
      result.exit_code = kExitOk;
    });
  }

  // token revoke
  {
    auto* cmd = token->add_subcommand("revoke", "revoke a token; clients using it are disconnected at once");
    auto id = std::make_shared<std::string>();
    cmd->add_option("token", *id, "the token's id or name")->required();
    cmd->callback([&global, &result, id] {
      auto client = local_daemon(global);
      const Json r = client->call(protocol::method::kRemoteTokensRevoke, {{"id", *id}});
      std::cout << "revoked token '" << r.value("name", "") << "' (id " << r.value("id", "") << ")";
      if (r.value("closed_sessions", 0) > 0) std::cout << "; disconnected " << r.value("closed_sessions", 0) << " client(s) using it";
      std::cout << "\n";
      result.exit_code = kExitOk;
    });
  }
}

}  // namespace kiln::cli
